//! YUV4MPEG2 video of a rendered burst: what a browser's fake camera plays
//! (Chromium's `--use-file-for-fake-video-capture`), so a page's whole path
//! (camera, capture, request) runs on a real face without a real camera.
//!
//! Written by hand: the format is a text header and raw planes, and the
//! crates that write it bring an encoder API we would not use.

use std::io::{self, Write};

use image::RgbImage;

/// Frames one video holds at most (a burst played forward and back).
pub const VIDEO_FRAMES_MAX: usize = 256;

/// Writes `frames` (all one size, even sides) as 4:2:0 video at `fps`, full
/// range BT.601 (`C420jpeg`, as JPEG and browsers' canvases use).
pub fn write_y4m(frames: &[RgbImage], fps: u32, mut out: impl Write) -> io::Result<()> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidInput, why.to_owned());
    let first = frames.first().ok_or_else(|| invalid("no frames"))?;
    let (width, height) = first.dimensions();
    if frames.len() > VIDEO_FRAMES_MAX {
        return Err(invalid("too many frames"));
    }
    if width % 2 != 0 || height % 2 != 0 || fps == 0 {
        return Err(invalid("sides must be even and fps positive"));
    }
    if frames.iter().any(|f| f.dimensions() != (width, height)) {
        return Err(invalid("frames differ in size"));
    }
    writeln!(
        out,
        "YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg"
    )?;
    let (w, h) = (width as usize, height as usize);
    let mut y = vec![0u8; w * h];
    let mut u = vec![0u8; w * h / 4];
    let mut v = vec![0u8; w * h / 4];
    for frame in frames {
        for (i, p) in frame.pixels().enumerate() {
            let [r, g, b] = p.0.map(f32::from);
            y[i] = (0.299 * r + 0.587 * g + 0.114 * b)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        // Chroma of each 2x2 block, from its average colour.
        for by in 0..h / 2 {
            for bx in 0..w / 2 {
                let mut sum = [0f32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let p = frame.get_pixel((2 * bx + dx) as u32, (2 * by + dy) as u32);
                    for (total, channel) in sum.iter_mut().zip(p.0) {
                        *total += f32::from(channel) / 4.0;
                    }
                }
                let [r, g, b] = sum;
                let i = by * (w / 2) + bx;
                u[i] = (128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b)
                    .round()
                    .clamp(0.0, 255.0) as u8;
                v[i] = (128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b)
                    .round()
                    .clamp(0.0, 255.0) as u8;
            }
        }
        out.write_all(b"FRAME\n")?;
        out.write_all(&y)?;
        out.write_all(&u)?;
        out.write_all(&v)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn header_and_planes_have_the_sizes_players_expect() {
        let grey = RgbImage::from_pixel(4, 2, Rgb([128, 128, 128]));
        let red = RgbImage::from_pixel(4, 2, Rgb([255, 0, 0]));
        let mut out = Vec::new();
        write_y4m(&[grey, red], 10, &mut out).unwrap();
        let header = b"YUV4MPEG2 W4 H2 F10:1 Ip A1:1 C420jpeg\n";
        assert!(out.starts_with(header));
        let frame = 6 + 8 + 2 + 2;
        assert_eq!(out.len(), header.len() + 2 * frame);
        let first = &out[header.len() + 6..header.len() + frame];
        assert_eq!(first, [128; 12], "grey has no chroma");
        let second = &out[header.len() + frame + 6..];
        assert_eq!(second[0], 76, "the luma of pure red");
        assert_eq!(second[10], 255, "its red difference");
    }

    #[test]
    fn odd_sides_and_mixed_sizes_are_refused() {
        let odd = RgbImage::new(3, 2);
        assert!(write_y4m(&[odd], 10, Vec::new()).is_err());
        let a = RgbImage::new(4, 2);
        let b = RgbImage::new(2, 2);
        assert!(write_y4m(&[a, b], 10, Vec::new()).is_err());
        assert!(write_y4m(&[], 10, Vec::new()).is_err());
    }
}
