//! The `cove` command line.

fn main() {
    println!("cove speaks protocol version {}", cove_client::PROTOCOL_VERSION);
}
