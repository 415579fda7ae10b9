//! canopy-patch
