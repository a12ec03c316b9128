//! Wire schema for the `photon.imessage.v1` protocol.
//!
//! This crate owns the `.proto` files under `proto/` at the workspace root
//! and everything generated from them:
//!
//! * prost message/enum types for the package,
//! * tonic server traits and clients for `GroupService`, `ChatService` and
//!   `EventService`,
//! * proto3-JSON `serde` impls (lowerCamelCase names, enum names as strings,
//!   `bytes` as base64, 64-bit integers as strings) used by the REST surface,
//! * the encoded [`FILE_DESCRIPTOR_SET`] (e.g. for gRPC reflection).
//!
//! Well-known types (`google.protobuf.Timestamp`, `google.protobuf.Empty`)
//! are mapped to [`pbjson_types`], which carry both prost and serde impls.
//!
//! Everything lives in [`pb`]; the schema is compiled at build time with
//! `protox`, so no system `protoc` is needed.

/// Generated code for the `photon.imessage.v1` package.
///
/// Service stubs are at `pb::group_service_server`, `pb::group_service_client`,
/// `pb::chat_service_server`, `pb::chat_service_client`,
/// `pb::event_service_server` and `pb::event_service_client`.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    unreachable_pub,
    missing_docs,
    rustdoc::all
)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/photon.imessage.v1.rs"));
    include!(concat!(env!("OUT_DIR"), "/photon.imessage.v1.serde.rs"));
}

/// Re-export of the well-known-type crate the generated code refers to, so
/// dependants can name `Timestamp`/`Empty` without their own dependency.
pub use pbjson_types;

/// Encoded `google.protobuf.FileDescriptorSet` covering our schema and its
/// imports (with source info).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/imgroups_descriptor.bin"));

pub mod sdk;

#[cfg(test)]
mod tests;
