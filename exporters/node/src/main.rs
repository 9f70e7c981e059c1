fn main() {
    println!("seattle_node_exporter: not built yet");
}
