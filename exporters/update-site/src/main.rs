fn main() {
    println!("seattle_updatesite_exporter: not built yet");
}
