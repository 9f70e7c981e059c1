fn main() {
    println!("seattle_zenodotus_exporter: not built yet");
}
