//! A real S3-compatible server with Object Lock for the bucket tests: moto's server
//! (`moto[server]`, `tests/requirements.txt`) from the test venv (`CALLTRAIL_TEST_PYTHON`).
//!
//! [`Moto::start`] runs `moto_server -H 127.0.0.1 -p <free port>` with signature checking on:
//! moto lets the first `INITIAL_NO_AUTH_ACTION_COUNT` requests through unsigned, and the harness
//! spends exactly those on setting up an IAM user allowed `s3:*` (its access key is
//! [`Moto::credentials`]) and a role it may assume. After that every request must carry a
//! SigV4 signature that moto recomputes with botocore and compares, and the IAM user's (or the
//! assumed role's) policy must allow the action. [`Moto::session_credentials`] are that role's
//! temporary credentials (an access key id, a secret and a session token).
//!
//! [`Moto::boto3`] runs a Python snippet with a boto3 `s3` client signed with the user's key:
//! an S3 client not written by us, to create buckets and to check what our code did. The server
//! is killed (by its process id) when the [`Moto`] value drops; its output is printed when a
//! test fails.

#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The region every request is signed for.
pub const REGION: &str = "us-east-1";

/// The IAM requests the setup script makes unsigned (create the user, its policy, its key, the
/// role, the role's policy); everything after them must be signed.
const SETUP_ACTIONS: u32 = 5;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const PYTHON_TIMEOUT: Duration = Duration::from_secs(60);

/// Creates the IAM user and role and assumes the role; prints the user's key id and secret, and
/// the role's temporary key id, secret and session token, one per line.
const SETUP: &str = r#"
import json, sys
import boto3
endpoint = sys.argv[1]
unsigned = dict(endpoint_url=endpoint, region_name="us-east-1",
                aws_access_key_id="setup", aws_secret_access_key="setup")
iam = boto3.client("iam", **unsigned)
def allow(actions):
    return json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]})
user = iam.create_user(UserName="calltrail")["User"]
iam.put_user_policy(UserName="calltrail", PolicyName="s3", PolicyDocument=allow(["s3:*", "sts:AssumeRole"]))
key = iam.create_access_key(UserName="calltrail")["AccessKey"]
trust = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": user["Arn"]}, "Action": "sts:AssumeRole"}]})
role = iam.create_role(RoleName="calltrail-writer", AssumeRolePolicyDocument=trust)["Role"]
iam.put_role_policy(RoleName="calltrail-writer", PolicyName="s3", PolicyDocument=allow("s3:*"))
sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
temp = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="calltrail-tests")["Credentials"]
for value in (key["AccessKeyId"], key["SecretAccessKey"],
              temp["AccessKeyId"], temp["SecretAccessKey"], temp["SessionToken"]):
    print(value)
"#;

/// Long-term or temporary AWS credentials moto accepts.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

/// A running `moto_server`, killed on drop.
pub struct Moto {
    child: Option<Child>,
    addr: SocketAddr,
    log: tempfile::NamedTempFile,
    python: PathBuf,
    user: Keys,
    role: Keys,
}

impl Moto {
    /// Starts moto on a free loopback port, waits until it answers, and sets up the IAM user
    /// and role whose credentials the tests sign with.
    pub fn start() -> Moto {
        let python = python();
        let server = python.with_file_name("moto_server");
        assert!(
            server.exists(),
            "{} does not exist: install tests/requirements.txt into the test venv (scripts/test does)",
            server.display()
        );
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(&server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", SETUP_ACTIONS.to_string())
            .stdin(Stdio::null())
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", server.display()));
        let mut moto = Moto {
            child: Some(child),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            log,
            python,
            user: placeholder_keys(),
            role: placeholder_keys(),
        };
        moto.wait_ready();
        let out = moto.run_python(SETUP, &[&moto.endpoint()]);
        let lines: Vec<&str> = out.lines().collect();
        let [user_id, user_secret, role_id, role_secret, token] = lines[..] else {
            panic!("the moto setup script printed {out:?}");
        };
        moto.user = Keys {
            access_key_id: user_id.to_owned(),
            secret_access_key: user_secret.to_owned(),
            session_token: None,
        };
        moto.role = Keys {
            access_key_id: role_id.to_owned(),
            secret_access_key: role_secret.to_owned(),
            session_token: Some(token.to_owned()),
        };
        moto
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The IAM user's access key (allowed `s3:*`).
    pub fn credentials(&self) -> Keys {
        self.user.clone()
    }

    /// Temporary credentials of a role allowed `s3:*`, with their session token.
    pub fn session_credentials(&self) -> Keys {
        self.role.clone()
    }

    /// Creates `bucket` with boto3, with Object Lock enabled or not.
    pub fn create_bucket(&self, bucket: &str, object_lock: bool) {
        let lock = if object_lock { "True" } else { "False" };
        self.boto3(&format!(
            "s3.create_bucket(Bucket={bucket:?}, ObjectLockEnabledForBucket={lock})"
        ));
    }

    /// Creates `bucket` with Object Lock enabled (boto3's `ObjectLockEnabledForBucket=True`).
    pub fn create_locked_bucket(&self, bucket: &str) {
        self.create_bucket(bucket, true);
    }

    /// Runs `snippet` in Python with `s3`, a boto3 S3 client signed with the IAM user's key, and
    /// `json` imported; returns what it printed.
    pub fn boto3(&self, snippet: &str) -> String {
        let script = format!(
            "import json, sys\nimport boto3\n\
             s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='{REGION}', \
             aws_access_key_id=sys.argv[2], aws_secret_access_key=sys.argv[3])\n{snippet}\n"
        );
        self.run_python(
            &script,
            &[
                &self.endpoint(),
                &self.user.access_key_id,
                &self.user.secret_access_key,
            ],
        )
    }

    /// What moto printed so far (its request log and any traceback).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("moto_server exited with {status}:\n{}", self.log());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on {} within {START_TIMEOUT:?}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn run_python(&self, script: &str, args: &[&str]) -> String {
        let mut child = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .args(args)
            // boto3 must not read the machine's AWS configuration or ask instance metadata.
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let out_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + PYTHON_TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("python did not finish within {PYTHON_TIMEOUT:?}:\n{script}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        assert!(
            status.success(),
            "python failed ({status}):\n{script}\nstderr:\n{stderr}"
        );
        stdout
    }
}

/// An Object Lock client of `bucket` on `moto`, signing with `keys`.
pub fn lock_client(
    moto: &Moto,
    bucket: &str,
    keys: Keys,
) -> calltrail_retention::bucket::object_lock::ObjectLockClient {
    use calltrail_retention::bucket::object_lock::{BucketConfig, ObjectLockClient};
    use calltrail_retention::bucket::sigv4::Credentials;
    ObjectLockClient::new(
        BucketConfig {
            endpoint: moto.endpoint(),
            region: REGION.to_owned(),
            bucket: bucket.to_owned(),
            credentials: Credentials {
                access_key_id: keys.access_key_id,
                secret_access_key: keys.secret_access_key,
                session_token: keys.session_token,
            },
            path_style: true,
        },
        &object_store::client::ClientOptions::new().with_allow_http(true),
    )
    .unwrap()
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- moto_server output ----\n{}\n---- end of moto_server output ----",
                self.log()
            );
        }
    }
}

fn placeholder_keys() -> Keys {
    Keys {
        access_key_id: String::new(),
        secret_access_key: String::new(),
        session_token: None,
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test venv's interpreter (`CALLTRAIL_TEST_PYTHON`, set by `scripts/test`).
fn python() -> PathBuf {
    let Some(path) = std::env::var_os("CALLTRAIL_TEST_PYTHON") else {
        panic!(
            "CALLTRAIL_TEST_PYTHON is not set: run the tests with scripts/test, which creates the Python venv"
        );
    };
    let path = PathBuf::from(path);
    assert!(
        Path::new(&path).exists(),
        "CALLTRAIL_TEST_PYTHON={} does not exist",
        path.display()
    );
    path
}
