//! canopy-protobuf
