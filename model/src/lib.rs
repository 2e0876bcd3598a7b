//! The lstm-nmt network on libtorch (through `tch`).

pub mod device;
