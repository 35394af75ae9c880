//! The Kafka transport: librdkafka's idempotent producer (acks=all by default), a topic fixed or
//! templated by tenant, a message key for per-key ordering, and headers naming the event, its
//! chain and seq. A batch counts as delivered only as far as delivery reports confirm.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde::Deserialize;

use super::transport::{Message, Rejection, Retry, SendResult};

/// Which field keys each message, so that a consumer sees one key's events in order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KafkaKey {
    /// The principal (default): one person's or workload's calls stay in order.
    #[default]
    Principal,
    /// The tenant (legal entity).
    Tenant,
    /// The event id: spreads evenly, no ordering.
    EventId,
    /// No key: the partitioner spreads messages.
    None,
}

/// `[forward.destinations.kafka]`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic; `{tenant}` is replaced by the event's tenant (`none` without one), made
    /// topic-safe. Default `calltrail`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Message key. Default `principal`.
    #[serde(default)]
    pub key: KafkaKey,
    /// librdkafka properties passed through (`security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, `sasl.password`, `ssl.ca.location`...). They override the defaults:
    /// `enable.idempotence=true`, `acks=all`, `message.timeout.ms=30000`, `linger.ms=5`.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_topic() -> String {
    "calltrail".into()
}

/// Property names whose values are never printed.
fn secret(name: &str) -> bool {
    ["password", "secret", "key", "token", "jaas"]
        .iter()
        .any(|s| name.contains(s))
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let props: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    if secret(k) { "<redacted>" } else { v.as_str() },
                )
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("properties", &props)
            .finish()
    }
}

impl KafkaConfig {
    /// Checks the settings; errors name the key under `key`.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err(format!("{key}.brokers: must name at least one broker"));
        }
        let fixed = self.topic.replace("{tenant}", "");
        if self.topic.is_empty()
            || self.topic.len() > 200
            || !fixed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(format!(
                "{key}.topic: {:?} must be 1 to 200 characters of A-Z, a-z, 0-9, '.', '_', '-' (and {{tenant}})",
                self.topic
            ));
        }
        if self.properties.contains_key("bootstrap.servers") {
            return Err(format!(
                "{key}.properties: set bootstrap.servers with {key}.brokers"
            ));
        }
        Ok(())
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "30000")
            .set("linger.ms", "5")
            .set("client.id", "calltrail");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }

    /// The topic of an event of `tenant`.
    fn topic_for(&self, tenant: Option<&str>) -> String {
        if !self.topic.contains("{tenant}") {
            return self.topic.clone();
        }
        let safe: String = tenant
            .unwrap_or("none")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect();
        self.topic.replace("{tenant}", &safe)
    }
}

/// Errors setting up the producer or checking a destination.
#[derive(Debug, thiserror::Error)]
pub enum KafkaSetupError {
    /// librdkafka refused the configuration.
    #[error("kafka configuration: {0}")]
    Config(String),
    /// The cluster could not be reached or the topic not used.
    #[error("kafka: {0}")]
    Unreachable(String),
}

/// A producer for one destination.
pub struct KafkaTransport {
    config: KafkaConfig,
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Per-message failures retrying cannot fix.
fn permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTimestamp
        )
    )
}

impl KafkaTransport {
    /// A producer for `config` (librdkafka connects lazily).
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaSetupError> {
        let producer: FutureProducer = config
            .client_config()
            .create()
            .map_err(|e| KafkaSetupError::Config(e.to_string()))?;
        Ok(Self {
            config: config.clone(),
            producer,
        })
    }

    /// Checks the cluster answers and the topic of `tenant` exists (or can be created), within
    /// `timeout`: for `calltrail forward test`.
    pub async fn check(
        &self,
        tenant: Option<&str>,
        timeout: Duration,
    ) -> Result<(), KafkaSetupError> {
        let topic = self.config.topic_for(tenant);
        let producer = self.producer.clone();
        let meta = tokio::task::spawn_blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(|m| {
                    m.topics()
                        .first()
                        .map(|t| (t.name().to_owned(), t.error(), t.partitions().len()))
                })
        })
        .await
        .map_err(|e| KafkaSetupError::Unreachable(e.to_string()))?
        .map_err(|e| KafkaSetupError::Unreachable(format!("metadata request failed: {e}")))?;
        match meta {
            Some((_, None, n)) if n > 0 => Ok(()),
            Some((name, Some(e), _)) => Err(KafkaSetupError::Unreachable(format!(
                "topic {name}: {:?}",
                RDKafkaErrorCode::from(e)
            ))),
            Some((name, None, _)) => Err(KafkaSetupError::Unreachable(format!(
                "topic {name} has no partitions"
            ))),
            None => Err(KafkaSetupError::Unreachable(
                "the cluster returned no topic metadata".into(),
            )),
        }
    }

    /// Produces every message and waits for their delivery reports. The confirmed prefix is
    /// what the reports confirm in order; rejections retrying cannot fix are listed.
    pub async fn send(&mut self, batch: &[Message]) -> SendResult {
        let mut futures = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            let topic = self.config.topic_for(m.meta.tenant.as_deref());
            let key = match self.config.key {
                KafkaKey::Principal => m.meta.principal.as_deref(),
                KafkaKey::Tenant => m.meta.tenant.as_deref(),
                KafkaKey::EventId => Some(m.meta.event_id.as_str()),
                KafkaKey::None => None,
            };
            let seq = m.meta.seq.to_string();
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "calltrail.event_id",
                    value: Some(m.meta.event_id.as_bytes()),
                })
                .insert(Header {
                    key: "calltrail.chain_id",
                    value: Some(m.meta.chain_id.as_bytes()),
                })
                .insert(Header {
                    key: "calltrail.seq",
                    value: Some(seq.as_bytes()),
                })
                .insert(Header {
                    key: "calltrail.hash",
                    value: Some(m.meta.hash.as_bytes()),
                })
                .insert(Header {
                    key: "calltrail.kind",
                    value: Some(m.meta.kind.as_str().as_bytes()),
                })
                .insert(Header {
                    key: "calltrail.schema_version",
                    value: Some(calltrail_schemas::SCHEMA_VERSION.to_string().as_bytes()),
                });
            let mut record = FutureRecord::to(&topic)
                .payload(&m.payload)
                .headers(headers);
            if let Some(k) = key {
                record = record.key(k);
            }
            // librdkafka's queue is bounded: when full, wait for deliveries to drain it.
            let mut attempts = 0u32;
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        futures.push(f);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                        if attempts < 3000 =>
                    {
                        record = back;
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err((e, _)) if permanent(&e) => {
                        return self.settle(futures, i, Some((i, e.to_string()))).await;
                    }
                    Err((e, _)) => {
                        let delivered = self.settle(futures, i, None).await;
                        return Err(match delivered {
                            Ok(rejected) => Retry {
                                delivered: i,
                                rejected,
                                reason: format!("producing failed: {e}"),
                            },
                            Err(r) => r,
                        });
                    }
                }
            }
        }
        let n = futures.len();
        self.settle(futures, n, None).await
    }

    /// Waits for the delivery reports of the first `produced` messages. `refused` is a message
    /// refused at once, for good, right after them.
    async fn settle(
        &self,
        futures: Vec<rdkafka::producer::DeliveryFuture>,
        produced: usize,
        refused: Option<(usize, String)>,
    ) -> SendResult {
        let mut rejected = Vec::new();
        let mut failure: Option<(usize, String)> = None;
        for (i, f) in futures.into_iter().enumerate() {
            let outcome = match f.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            };
            if let Err(e) = outcome {
                if failure.is_some() {
                    continue;
                }
                if permanent(&e) {
                    rejected.push(Rejection {
                        index: i,
                        reason: e.to_string(),
                    });
                } else {
                    failure = Some((i, e.to_string()));
                }
            }
        }
        if let Some((index, reason)) = failure {
            rejected.retain(|r| r.index < index);
            return Err(Retry {
                delivered: index,
                rejected,
                reason: format!("delivery failed: {reason}"),
            });
        }
        if let Some((index, reason)) = refused {
            rejected.push(Rejection { index, reason });
            // The refused message is settled; the rest of the batch is sent again.
            return Err(Retry {
                delivered: index + 1,
                rejected,
                reason: "a message was refused; continuing after it".into(),
            });
        }
        debug_assert!(produced >= rejected.len());
        Ok(rejected)
    }

    /// Waits up to `timeout` for queued messages to be delivered (at shutdown).
    pub fn flush(&self, timeout: Duration) {
        if let Err(e) = self.producer.flush(timeout) {
            tracing::warn!(error = %e, "Kafka producer flush at shutdown did not finish.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(topic: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: "127.0.0.1:9".into(),
            topic: topic.into(),
            key: KafkaKey::Principal,
            properties: BTreeMap::from([("sasl.password".into(), "hunter2".into())]),
        }
    }

    #[test]
    fn topics_are_templated_by_tenant_and_made_safe() {
        let c = config("calltrail.{tenant}");
        assert_eq!(c.topic_for(Some("acme-bank-eu")), "calltrail.acme-bank-eu");
        assert_eq!(c.topic_for(Some("a b/c")), "calltrail.a_b_c");
        assert_eq!(c.topic_for(None), "calltrail.none");
        assert_eq!(config("fixed").topic_for(Some("x")), "fixed");
        assert!(c.validate("forward.destinations[0].kafka").is_ok());
        let e = config("bad topic").validate("k").unwrap_err();
        assert!(e.starts_with("k.topic"), "{e}");
    }

    fn messages(n: usize) -> Vec<Message> {
        (0..n)
            .map(|i| Message {
                payload: format!("{{\"n\":{i}}}").into_bytes(),
                meta: crate::forward::event::EventMeta {
                    kind: crate::forward::event::EventKind::ToolCall,
                    event_id: format!("e{i}"),
                    chain_id: "c".into(),
                    seq: i as u64,
                    hash: "00".into(),
                    time_ns: 0,
                    tenant: Some("acme".into()),
                    principal: Some(format!("p{}", i % 3)),
                    severity: 6,
                },
            })
            .collect()
    }

    /// Fault injection a real broker cannot produce on demand, with librdkafka's own mock
    /// cluster (a fake, named as such): transient broker errors are retried until delivered,
    /// exactly once; a message the broker refuses for good is reported as a rejection; a dead
    /// cluster is a retry with nothing confirmed.
    #[tokio::test]
    async fn mock_cluster_errors_are_retried_or_rejected() {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::mocking::MockCluster;
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

        let cluster = MockCluster::new(3).unwrap();
        cluster.create_topic("t", 1, 3).unwrap();
        let mut c = config("t");
        c.brokers = cluster.bootstrap_servers();
        c.properties = BTreeMap::from([("message.timeout.ms".into(), "3000".into())]);
        let mut t = KafkaTransport::new(&c).unwrap();

        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 3],
        );
        assert_eq!(t.send(&messages(10)).await, Ok(Vec::new()));

        cluster.request_errors(
            RDKafkaApiKey::Produce,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
        );
        let one = messages(1);
        let rejected = t.send(&one).await.unwrap();
        assert_eq!(rejected.len(), 1, "{rejected:?}");
        assert!(rejected[0].reason.contains("size"), "{rejected:?}");

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "check")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&["t"]).unwrap();
        let mut got = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while got.len() < 10 && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                got.push(rdkafka::Message::payload(&m).map(<[u8]>::to_vec));
            }
        }
        assert_eq!(
            got.len(),
            10,
            "every message once, despite the injected errors"
        );

        for id in 1..=3 {
            cluster.broker_down(id).unwrap();
        }
        match t.send(&messages(2)).await {
            Err(Retry { delivered: 0, .. }) => {}
            other => panic!("a dead cluster must be retried: {other:?}"),
        }
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let text = format!("{:?}", config("t"));
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("<redacted>"));
    }
}
