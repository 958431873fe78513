//! The container init and every process hako clones into a container: the messages it
//! exchanges with the runtime ([`channel`]), its namespaces and id maps, its stdio and console,
//! and the last steps before execve ([`process`], and [`attrs`] for scheduler, I/O priority, CPU
//! affinity, memory policy and personality). [`entry`] is the init's whole path, from
//! clone3 returning in the child to execve of `process.args`.

pub mod attrs;
pub mod channel;
pub mod console;
pub mod entry;
pub mod idmap;
pub mod namespaces;
pub mod process;
pub mod rootless;
pub mod stdio;
mod title;
