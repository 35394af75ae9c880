//! Tables read from an object store (the S3 bucket `calltrail bucket push` fills) instead of
//! the local data directory.
//!
//! The bucket holds the same Hive-partitioned tree as a data directory, under a root URL such
//! as `s3://bucket/prefix/`. A session of an engine over a bucket registers the bucket's store
//! on its runtime under `s3://bucket`, and each table is a listing table over
//! `<root>/<table>/` with the same partition columns, scope and date filters as a local table.
//! A table with no object under its prefix lists no file and answers with no rows.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::object_store::ObjectStore;

use crate::{Error, Result};

/// An object store holding a store's tree, and the URL of the tree's root.
#[derive(Debug, Clone)]
pub struct BucketSource {
    /// `s3://bucket/prefix/`, with the trailing `/`.
    root: String,
    /// `s3://bucket`: what the runtime resolves to `store`.
    store_url: ObjectStoreUrl,
    store: Arc<dyn ObjectStore>,
}

impl BucketSource {
    /// The tree at `root` (`s3://bucket/` or `s3://bucket/prefix/`), read through `store`
    /// (an object store on that bucket, whose paths start at the bucket's root).
    pub fn new(root: &str, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let Some(rest) = root.strip_prefix("s3://") else {
            return Err(Error::Plan(format!(
                "bucket root {root:?} is not an s3:// URL"
            )));
        };
        let bucket = rest.split('/').next().unwrap_or_default();
        if bucket.is_empty() {
            return Err(Error::Plan(format!("bucket root {root:?} names no bucket")));
        }
        let store_url = ObjectStoreUrl::parse(format!("s3://{bucket}"))
            .map_err(|e| Error::Plan(format!("bucket root {root:?}: {e}")))?;
        let root = if root.ends_with('/') {
            root.to_owned()
        } else {
            format!("{root}/")
        };
        Ok(Self {
            root,
            store_url,
            store,
        })
    }

    /// The root URL of the tree, with its trailing `/`.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// Makes `runtime` resolve the bucket's URLs to its store.
    pub(crate) fn register(&self, runtime: &RuntimeEnv) {
        runtime.register_object_store(self.store_url.as_ref(), self.store.clone());
    }

    /// The table `name` of `schema`: a Hive-partitioned listing table over `<root>/<name>/`.
    pub(crate) fn table_provider(
        &self,
        name: &str,
        schema: SchemaRef,
    ) -> Result<Arc<dyn TableProvider>> {
        let url = ListingTableUrl::parse(format!("{}{name}/", self.root))
            .map_err(|e| Error::Internal(e.to_string()))?;
        crate::engine::listing_table(url, name, schema)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::object_store::memory::InMemory;

    use super::*;

    #[test]
    fn roots_are_s3_urls_with_a_bucket() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let s = BucketSource::new("s3://audit/prod/calltrail", store.clone()).unwrap();
        assert_eq!(s.root(), "s3://audit/prod/calltrail/");
        assert_eq!(s.store_url.as_str(), "s3://audit/");
        assert!(BucketSource::new("/var/lib/calltrail", store.clone()).is_err());
        assert!(BucketSource::new("s3:///prefix/", store).is_err());
    }
}
