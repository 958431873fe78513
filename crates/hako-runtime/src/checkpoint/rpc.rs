//! CRIU's RPC messages (`images/rpc.proto` of CRIU v4.2, MIT-licensed), as `prost-build` 0.14
//! generated them. Committed so that building hako needs neither `protoc` nor a build script;
//! regenerate with `prost_build::compile_protos(&["rpc.proto"], &["."])` when CRIU's file changes
//! (fields are only ever added there, and unknown fields are skipped on decode).
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuPageServerInfo {
    #[prost(string, optional, tag = "1")]
    pub address: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(int32, optional, tag = "2")]
    pub port: ::core::option::Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub pid: ::core::option::Option<i32>,
    #[prost(int32, optional, tag = "4")]
    pub fd: ::core::option::Option<i32>,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuVethPair {
    #[prost(string, required, tag = "1")]
    pub if_in: ::prost::alloc::string::String,
    #[prost(string, required, tag = "2")]
    pub if_out: ::prost::alloc::string::String,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct ExtMountMap {
    #[prost(string, required, tag = "1")]
    pub key: ::prost::alloc::string::String,
    #[prost(string, required, tag = "2")]
    pub val: ::prost::alloc::string::String,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct JoinNamespace {
    #[prost(string, required, tag = "1")]
    pub ns: ::prost::alloc::string::String,
    #[prost(string, required, tag = "2")]
    pub ns_file: ::prost::alloc::string::String,
    #[prost(string, optional, tag = "3")]
    pub extra_opt: ::core::option::Option<::prost::alloc::string::String>,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct InheritFd {
    #[prost(string, required, tag = "1")]
    pub key: ::prost::alloc::string::String,
    #[prost(int32, required, tag = "2")]
    pub fd: i32,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CgroupRoot {
    #[prost(string, optional, tag = "1")]
    pub ctrl: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, required, tag = "2")]
    pub path: ::prost::alloc::string::String,
}
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct UnixSk {
    #[prost(uint32, required, tag = "1")]
    pub inode: u32,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CriuOpts {
    #[prost(int32, required, tag = "1", default = "-1")]
    pub images_dir_fd: i32,
    /// used only if images_dir_fd == -1
    #[prost(string, optional, tag = "68")]
    pub images_dir: ::core::option::Option<::prost::alloc::string::String>,
    /// if not set on dump, will dump requesting process
    #[prost(int32, optional, tag = "2")]
    pub pid: ::core::option::Option<i32>,
    #[prost(bool, optional, tag = "3")]
    pub leave_running: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub ext_unix_sk: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "5")]
    pub tcp_established: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "6")]
    pub evasive_devices: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub shell_job: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "8")]
    pub file_locks: ::core::option::Option<bool>,
    #[prost(int32, optional, tag = "9", default = "2")]
    pub log_level: ::core::option::Option<i32>,
    /// No subdirs are allowed. Consider using work-dir
    #[prost(string, optional, tag = "10")]
    pub log_file: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(message, optional, tag = "11")]
    pub ps: ::core::option::Option<CriuPageServerInfo>,
    #[prost(bool, optional, tag = "12")]
    pub notify_scripts: ::core::option::Option<bool>,
    #[prost(string, optional, tag = "13")]
    pub root: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "14")]
    pub parent_img: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(bool, optional, tag = "15")]
    pub track_mem: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "16")]
    pub auto_dedup: ::core::option::Option<bool>,
    #[prost(int32, optional, tag = "17")]
    pub work_dir_fd: ::core::option::Option<i32>,
    #[prost(bool, optional, tag = "18")]
    pub link_remap: ::core::option::Option<bool>,
    /// DEPRECATED, use external instead
    #[prost(message, repeated, tag = "19")]
    pub veths: ::prost::alloc::vec::Vec<CriuVethPair>,
    #[prost(uint32, optional, tag = "20", default = "4294967295")]
    pub cpu_cap: ::core::option::Option<u32>,
    #[prost(bool, optional, tag = "21")]
    pub force_irmap: ::core::option::Option<bool>,
    #[prost(string, repeated, tag = "22")]
    pub exec_cmd: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    /// DEPRECATED, use external instead
    #[prost(message, repeated, tag = "23")]
    pub ext_mnt: ::prost::alloc::vec::Vec<ExtMountMap>,
    /// backward compatibility
    #[prost(bool, optional, tag = "24")]
    pub manage_cgroups: ::core::option::Option<bool>,
    #[prost(message, repeated, tag = "25")]
    pub cg_root: ::prost::alloc::vec::Vec<CgroupRoot>,
    /// swrk only
    #[prost(bool, optional, tag = "26")]
    pub rst_sibling: ::core::option::Option<bool>,
    /// swrk only
    #[prost(message, repeated, tag = "27")]
    pub inherit_fd: ::prost::alloc::vec::Vec<InheritFd>,
    #[prost(bool, optional, tag = "28")]
    pub auto_ext_mnt: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "29")]
    pub ext_sharing: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "30")]
    pub ext_masters: ::core::option::Option<bool>,
    #[prost(string, repeated, tag = "31")]
    pub skip_mnt: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(string, repeated, tag = "32")]
    pub enable_fs: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    /// DEPRECATED, use external instead
    #[prost(message, repeated, tag = "33")]
    pub unix_sk_ino: ::prost::alloc::vec::Vec<UnixSk>,
    #[prost(enumeration = "CriuCgMode", optional, tag = "34")]
    pub manage_cgroups_mode: ::core::option::Option<i32>,
    #[prost(uint32, optional, tag = "35", default = "1048576")]
    pub ghost_limit: ::core::option::Option<u32>,
    #[prost(string, repeated, tag = "36")]
    pub irmap_scan_paths: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(string, repeated, tag = "37")]
    pub external: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(uint32, optional, tag = "38")]
    pub empty_ns: ::core::option::Option<u32>,
    #[prost(message, repeated, tag = "39")]
    pub join_ns: ::prost::alloc::vec::Vec<JoinNamespace>,
    #[prost(string, optional, tag = "41")]
    pub cgroup_props: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "42")]
    pub cgroup_props_file: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, repeated, tag = "43")]
    pub cgroup_dump_controller: ::prost::alloc::vec::Vec<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "44")]
    pub freeze_cgroup: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(uint32, optional, tag = "45")]
    pub timeout: ::core::option::Option<u32>,
    #[prost(bool, optional, tag = "46")]
    pub tcp_skip_in_flight: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "47")]
    pub weak_sysctls: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "48")]
    pub lazy_pages: ::core::option::Option<bool>,
    #[prost(int32, optional, tag = "49")]
    pub status_fd: ::core::option::Option<i32>,
    #[prost(bool, optional, tag = "50")]
    pub orphan_pts_master: ::core::option::Option<bool>,
    #[prost(string, optional, tag = "51")]
    pub config_file: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(bool, optional, tag = "52")]
    pub tcp_close: ::core::option::Option<bool>,
    #[prost(string, optional, tag = "53")]
    pub lsm_profile: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "54")]
    pub tls_cacert: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "55")]
    pub tls_cacrl: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "56")]
    pub tls_cert: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(string, optional, tag = "57")]
    pub tls_key: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(bool, optional, tag = "58")]
    pub tls: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "59")]
    pub tls_no_cn_verify: ::core::option::Option<bool>,
    #[prost(string, optional, tag = "60")]
    pub cgroup_yard: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(
        enumeration = "CriuPreDumpMode",
        optional,
        tag = "61",
        default = "Splice"
    )]
    pub pre_dump_mode: ::core::option::Option<i32>,
    #[prost(int32, optional, tag = "62")]
    pub pidfd_store_sk: ::core::option::Option<i32>,
    #[prost(string, optional, tag = "63")]
    pub lsm_mount_context: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(
        enumeration = "CriuNetworkLockMethod",
        optional,
        tag = "64",
        default = "Iptables"
    )]
    pub network_lock: ::core::option::Option<i32>,
    #[prost(bool, optional, tag = "65")]
    pub mntns_compat_mode: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "66")]
    pub skip_file_rwx_check: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "67")]
    pub unprivileged: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "69")]
    pub leave_stopped: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "70")]
    pub display_stats: ::core::option::Option<bool>,
    /// 	optional bool			check_mounts		= 128;
    #[prost(bool, optional, tag = "71")]
    pub log_to_stderr: ::core::option::Option<bool>,
}
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuDumpResp {
    #[prost(bool, optional, tag = "1")]
    pub restored: ::core::option::Option<bool>,
}
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuRestoreResp {
    #[prost(int32, required, tag = "1")]
    pub pid: i32,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuNotify {
    #[prost(string, optional, tag = "1")]
    pub script: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(int32, optional, tag = "2")]
    pub pid: ::core::option::Option<i32>,
}
///
/// List of features which can queried via
/// CRIU_REQ_TYPE__FEATURE_CHECK
#[derive(Clone, Copy, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuFeatures {
    #[prost(bool, optional, tag = "1")]
    pub mem_track: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "2")]
    pub lazy_pages: ::core::option::Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub pidfd_store: ::core::option::Option<bool>,
}
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct CriuReq {
    #[prost(enumeration = "CriuReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(message, optional, tag = "2")]
    pub opts: ::core::option::Option<CriuOpts>,
    #[prost(bool, optional, tag = "3")]
    pub notify_success: ::core::option::Option<bool>,
    ///
    /// When set service won't close the connection but
    /// will wait for more req-s to appear. Works not
    /// for all request types.
    #[prost(bool, optional, tag = "4")]
    pub keep_open: ::core::option::Option<bool>,
    ///
    /// 'features' can be used to query which features
    /// are supported by the installed criu/kernel
    /// via RPC.
    #[prost(message, optional, tag = "5")]
    pub features: ::core::option::Option<CriuFeatures>,
    /// 'pid' is used for WAIT_PID
    #[prost(uint32, optional, tag = "6")]
    pub pid: ::core::option::Option<u32>,
}
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuResp {
    #[prost(enumeration = "CriuReqType", required, tag = "1")]
    pub r#type: i32,
    #[prost(bool, required, tag = "2")]
    pub success: bool,
    #[prost(message, optional, tag = "3")]
    pub dump: ::core::option::Option<CriuDumpResp>,
    #[prost(message, optional, tag = "4")]
    pub restore: ::core::option::Option<CriuRestoreResp>,
    #[prost(message, optional, tag = "5")]
    pub notify: ::core::option::Option<CriuNotify>,
    #[prost(message, optional, tag = "6")]
    pub ps: ::core::option::Option<CriuPageServerInfo>,
    #[prost(int32, optional, tag = "7")]
    pub cr_errno: ::core::option::Option<i32>,
    #[prost(message, optional, tag = "8")]
    pub features: ::core::option::Option<CriuFeatures>,
    #[prost(string, optional, tag = "9")]
    pub cr_errmsg: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(message, optional, tag = "10")]
    pub version: ::core::option::Option<CriuVersion>,
    #[prost(int32, optional, tag = "11")]
    pub status: ::core::option::Option<i32>,
}
/// Answer for criu_req_type.VERSION requests
#[derive(Clone, PartialEq, Eq, Hash, ::prost::Message)]
pub struct CriuVersion {
    #[prost(int32, required, tag = "1")]
    pub major_number: i32,
    #[prost(int32, required, tag = "2")]
    pub minor_number: i32,
    #[prost(string, optional, tag = "3")]
    pub gitid: ::core::option::Option<::prost::alloc::string::String>,
    #[prost(int32, optional, tag = "4")]
    pub sublevel: ::core::option::Option<i32>,
    #[prost(int32, optional, tag = "5")]
    pub extra: ::core::option::Option<i32>,
    #[prost(string, optional, tag = "6")]
    pub name: ::core::option::Option<::prost::alloc::string::String>,
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CriuCgMode {
    Ignore = 0,
    CgNone = 1,
    Props = 2,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}
impl CriuCgMode {
    /// String value of the enum field names used in the ProtoBuf definition.
    ///
    /// The values are not transformed in any way and thus are considered stable
    /// (if the ProtoBuf definition does not change) and safe for programmatic use.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Ignore => "IGNORE",
            Self::CgNone => "CG_NONE",
            Self::Props => "PROPS",
            Self::Soft => "SOFT",
            Self::Full => "FULL",
            Self::Strict => "STRICT",
            Self::Default => "DEFAULT",
        }
    }
    /// Creates an enum from field names used in the ProtoBuf definition.
    pub fn from_str_name(value: &str) -> ::core::option::Option<Self> {
        match value {
            "IGNORE" => Some(Self::Ignore),
            "CG_NONE" => Some(Self::CgNone),
            "PROPS" => Some(Self::Props),
            "SOFT" => Some(Self::Soft),
            "FULL" => Some(Self::Full),
            "STRICT" => Some(Self::Strict),
            "DEFAULT" => Some(Self::Default),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CriuNetworkLockMethod {
    Iptables = 1,
    Nftables = 2,
    Skip = 3,
}
impl CriuNetworkLockMethod {
    /// String value of the enum field names used in the ProtoBuf definition.
    ///
    /// The values are not transformed in any way and thus are considered stable
    /// (if the ProtoBuf definition does not change) and safe for programmatic use.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Iptables => "IPTABLES",
            Self::Nftables => "NFTABLES",
            Self::Skip => "SKIP",
        }
    }
    /// Creates an enum from field names used in the ProtoBuf definition.
    pub fn from_str_name(value: &str) -> ::core::option::Option<Self> {
        match value {
            "IPTABLES" => Some(Self::Iptables),
            "NFTABLES" => Some(Self::Nftables),
            "SKIP" => Some(Self::Skip),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CriuPreDumpMode {
    Splice = 1,
    VmRead = 2,
}
impl CriuPreDumpMode {
    /// String value of the enum field names used in the ProtoBuf definition.
    ///
    /// The values are not transformed in any way and thus are considered stable
    /// (if the ProtoBuf definition does not change) and safe for programmatic use.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Splice => "SPLICE",
            Self::VmRead => "VM_READ",
        }
    }
    /// Creates an enum from field names used in the ProtoBuf definition.
    pub fn from_str_name(value: &str) -> ::core::option::Option<Self> {
        match value {
            "SPLICE" => Some(Self::Splice),
            "VM_READ" => Some(Self::VmRead),
            _ => None,
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
#[repr(i32)]
pub enum CriuReqType {
    Empty = 0,
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    PageServer = 5,
    Notify = 6,
    CpuinfoDump = 7,
    CpuinfoCheck = 8,
    FeatureCheck = 9,
    Version = 10,
    WaitPid = 11,
    PageServerChld = 12,
    SinglePreDump = 13,
}
impl CriuReqType {
    /// String value of the enum field names used in the ProtoBuf definition.
    ///
    /// The values are not transformed in any way and thus are considered stable
    /// (if the ProtoBuf definition does not change) and safe for programmatic use.
    pub fn as_str_name(&self) -> &'static str {
        match self {
            Self::Empty => "EMPTY",
            Self::Dump => "DUMP",
            Self::Restore => "RESTORE",
            Self::Check => "CHECK",
            Self::PreDump => "PRE_DUMP",
            Self::PageServer => "PAGE_SERVER",
            Self::Notify => "NOTIFY",
            Self::CpuinfoDump => "CPUINFO_DUMP",
            Self::CpuinfoCheck => "CPUINFO_CHECK",
            Self::FeatureCheck => "FEATURE_CHECK",
            Self::Version => "VERSION",
            Self::WaitPid => "WAIT_PID",
            Self::PageServerChld => "PAGE_SERVER_CHLD",
            Self::SinglePreDump => "SINGLE_PRE_DUMP",
        }
    }
    /// Creates an enum from field names used in the ProtoBuf definition.
    pub fn from_str_name(value: &str) -> ::core::option::Option<Self> {
        match value {
            "EMPTY" => Some(Self::Empty),
            "DUMP" => Some(Self::Dump),
            "RESTORE" => Some(Self::Restore),
            "CHECK" => Some(Self::Check),
            "PRE_DUMP" => Some(Self::PreDump),
            "PAGE_SERVER" => Some(Self::PageServer),
            "NOTIFY" => Some(Self::Notify),
            "CPUINFO_DUMP" => Some(Self::CpuinfoDump),
            "CPUINFO_CHECK" => Some(Self::CpuinfoCheck),
            "FEATURE_CHECK" => Some(Self::FeatureCheck),
            "VERSION" => Some(Self::Version),
            "WAIT_PID" => Some(Self::WaitPid),
            "PAGE_SERVER_CHLD" => Some(Self::PageServerChld),
            "SINGLE_PRE_DUMP" => Some(Self::SinglePreDump),
            _ => None,
        }
    }
}
