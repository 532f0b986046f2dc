//! The `cove-server` binary.

fn main() {
    println!(
        "cove-server speaks protocol version {}",
        cove_server::PROTOCOL_VERSION
    );
}
