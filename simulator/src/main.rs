fn main() {
    println!("seattle_simulator: not built yet");
}
