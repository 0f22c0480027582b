//! Voice-embedding micro-benchmark: ms to embed 1 and 4 tweet-sized drafts
//! with the int8 MiniLM (what scoring a draft's n candidates costs).
//! `BRANDVOICE_THREADS=2 cargo run --release --example emb_mb` (needs the
//! embedding model in the cache; any test run fetches it).
use brandvoice::mood::embed::Embedder;
use std::time::Instant;
fn main() {
    let e = Embedder::load_default().unwrap();
    let texts = ["We're sorry your playlist vanished after the update! Please try restarting the app and signing in again; if it's still missing, DM us your account email and we'll restore it.",
        "Sorry about the missing playlist. Restart the app and sign back in. Still gone? Send us a DM and we'll dig in right away.",
        "That's frustrating, and we're on it. Most playlists come back after a sign-out and sign-in. If yours doesn't, DM us.",
        "Sorry for the trouble with your playlist after the update. Please sign out and back in; if it's still not there, DM us your email."];
    for n in [1usize, 4] {
        let t: Vec<&str> = texts[..n].to_vec();
        for _ in 0..5 { e.embed_batch(&t).unwrap(); }
        let it = 100;
        let s = Instant::now();
        for _ in 0..it { e.embed_batch(&t).unwrap(); }
        println!("n={n}: {:.2} ms", s.elapsed().as_secs_f64() * 1000.0 / it as f64);
    }
}
