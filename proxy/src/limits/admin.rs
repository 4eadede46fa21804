//! Admin API (written next).
