//! Sealed segments in an S3-compatible bucket with Object Lock (WORM storage in the sense of
//! SEC 17a-4(f)).
//!
//! `object_store` puts, gets, lists and deletes the objects; it cannot set an object version's
//! retention, read it back, delete one specific version, or create and inspect a bucket's Object
//! Lock configuration. These modules fill that gap with a small client that talks to the same
//! bucket through `object_store`'s own HTTP client (so the same TLS, proxy and timeout settings):
//!
//! - [`sigv4`]: AWS Signature Version 4 request signing;
//! - [`object_lock`]: the Object Lock operations (retention per object version, deleting a
//!   version, the bucket's lock configuration) and their errors;
//! - `wire`: the XML documents and headers those operations send and read;
//! - [`config`]: the `[bucket]` section, credentials from the environment, and the connected
//!   store and Object Lock client;
//! - [`push`]: copying a local store's sealed files into the bucket, locking each segment's
//!   version until its retention expiry.

pub mod config;
pub mod object_lock;
pub mod push;
pub mod sigv4;
mod wire;
