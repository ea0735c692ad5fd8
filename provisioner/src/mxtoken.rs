//! Domain names → MX host tokens (to be written).
