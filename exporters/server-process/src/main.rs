fn main() {
    println!("seattle_process_exporter: not built yet");
}
