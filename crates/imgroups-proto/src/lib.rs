//! Wire schema for the `photon.imessage.v1` protocol.
//!
//! This crate owns the `.proto` files under `proto/` at the workspace root
//! and everything generated from them:
//!
//! * prost message/enum types for the package,
//! * tonic server traits and clients for every service of the package
//!   (`GroupService`, `ChatService`, `EventService`, `MessageService`,
//!   `AddressService`, `PollService`, `AttachmentService`, `LocationService`),
//! * proto3-JSON `serde` impls (lowerCamelCase names, enum names as strings,
//!   `bytes` as base64, 64-bit integers as strings) used by the REST surface,
//! * the encoded [`FILE_DESCRIPTOR_SET`] (e.g. for gRPC reflection),
//! * [`methods`]: every RPC as data (gRPC path, streaming, HTTP routes, request
//!   fields), generated from the descriptors so no list of RPCs is kept by hand,
//! * [`sdk`]: the official SDK's JSON shape of a group event, written once for
//!   the server's console and the Rust SDK (`events tail --json`).
//!
//! Well-known types (`google.protobuf.Timestamp`, `google.protobuf.Empty`)
//! are mapped to [`pbjson_types`], which carry both prost and serde impls.
//!
//! Everything lives in [`pb`]; the schema is compiled at build time with
//! `protox`, so no system `protoc` is needed.

/// Generated code for the `photon.imessage.v1` package.
///
/// Service stubs are at `pb::<service>_server` and `pb::<service>_client`
/// (`pb::group_service_server`, `pb::message_service_client`, …).
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

pub mod methods;

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
