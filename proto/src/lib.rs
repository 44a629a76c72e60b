//! The `gatehouse.v1` gRPC API: messages, clients and servers.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("gatehouse.v1");

    /// Encoded `FileDescriptorSet` of every gatehouse proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gatehouse_descriptor.bin"));
}

/// The ConfigSync wire protocol version this build speaks. 2: routes carry checks a data plane
/// must enforce (subscription keys, client certificates, hostnames); an older data plane would
/// drop them and forward unchecked, so the control plane refuses it instead.
pub const PROTOCOL_VERSION: u32 = 2;
