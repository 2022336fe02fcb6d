//! Times one direct convolution of `src/cpu/conv.rs` on a layer shape of MobileCLIP-S0's image
//! tower, for kernel work (wall time natively, or instruction counts under
//! `valgrind --tool=callgrind`):
//!
//! ```text
//! cargo run --release --example kbench -- s1_7   # s1_7 | s1_3 | pe | stem | (default) s4_7
//! ```
//!
//! Shapes: 7×7 and 3×3 depthwise at 64×64 (stage 1), the 7×7 stride-2 patch embedding, the 3×3
//! stride-2 stem, and the 7×7 depthwise at 8×8×512 (stage 4, the default).

use mobileclip_wasm::cpu::conv::{ConvGeometry, conv2d_direct};
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let g = match which.as_str() {
        "s1_7" => ConvGeometry {
            batch: 1,
            cin: 64,
            h: 64,
            w: 64,
            cout: 64,
            kh: 7,
            kw: 7,
            stride: 1,
            pad_h: 3,
            pad_w: 3,
            groups: 64,
        },
        "s1_3" => ConvGeometry {
            batch: 1,
            cin: 64,
            h: 64,
            w: 64,
            cout: 64,
            kh: 3,
            kw: 3,
            stride: 1,
            pad_h: 1,
            pad_w: 1,
            groups: 64,
        },
        "pe" => ConvGeometry {
            batch: 1,
            cin: 64,
            h: 64,
            w: 64,
            cout: 128,
            kh: 7,
            kw: 7,
            stride: 2,
            pad_h: 3,
            pad_w: 3,
            groups: 64,
        },
        "stem" => ConvGeometry {
            batch: 1,
            cin: 3,
            h: 256,
            w: 256,
            cout: 64,
            kh: 3,
            kw: 3,
            stride: 2,
            pad_h: 1,
            pad_w: 1,
            groups: 1,
        },
        _ => ConvGeometry {
            batch: 1,
            cin: 512,
            h: 8,
            w: 8,
            cout: 512,
            kh: 7,
            kw: 7,
            stride: 1,
            pad_h: 3,
            pad_w: 3,
            groups: 512,
        },
    };
    let x: Vec<f32> = (0..g.batch * g.cin * g.h * g.w).map(|v| (v % 7) as f32).collect();
    let w: Vec<f32> = (0..g.cout * g.cin / g.groups * g.kh * g.kw).map(|v| (v % 5) as f32).collect();
    let b: Vec<f32> = vec![0.5; g.cout];
    let t = std::time::Instant::now();
    let y = conv2d_direct(&x, &w, Some(&b), &g, false);
    let macs = g.cout * g.out_h() * g.out_w() * g.kh * g.kw * g.cin / g.groups;
    eprintln!("{which}: {:?} {} MMAC {}", t.elapsed(), macs as f64 / 1e6, y[0]);
}
