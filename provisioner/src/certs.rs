//! Fleet certificates → TLSA data (to be written).
