//! forget
