//! Edits of the ONNX graph at load time that make it faster on ONNX Runtime without changing a
//! single output bit.

pub mod conv_rewrite;
pub mod proto;
pub mod wire;

pub use conv_rewrite::{RewriteError, RewriteReport, rewrite_graph};

/// Whether ONNX Runtime's unsigned×signed int8 kernels compute exact sums on this CPU. With
/// VNNI (`vpdpbusd`) they do; the AVX2 kernel (`vpmaddubsw`) saturates pair sums at i16 and
/// may not, so the rewrite is skipped there.
pub fn int8_matmul_is_exact() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
