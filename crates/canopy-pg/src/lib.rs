//! canopy-pg
