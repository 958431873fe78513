//! hako-spec: everything hako knows about its inputs and its records, with no syscalls.
//!
//! * [`bundle`] loads a bundle's `config.json` (strictly typed by `oci-spec`) and reports the exact
//!   JSON path of a malformed field.
//! * [`validate`] rejects configurations the kernel layer must never see.
//! * [`attrs`] checks the process attributes (scheduler, I/O priority, CPU affinity, memory
//!   policy) and parses the kernel's list format.
//! * [`id`] is runc's container-id rule.
//! * [`state`] is the on-disk container record and the runc-shaped `state` JSON.

pub mod attrs;
pub mod bundle;
pub mod defaults;
pub mod error;
pub mod id;
pub mod state;
pub mod validate;

pub use error::SpecError;
pub use oci_spec::runtime as oci;

pub type Result<T> = std::result::Result<T, SpecError>;
