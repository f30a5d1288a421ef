//! One server instance of the rows showcase's scale-out run, for the
//! scale-out test (which cannot start an example): see
//! `tether_examples::rows::cluster::instance`.

use tether_examples::rows::cluster::instance::{self, InstanceArgs};

fn main() {
    let result = InstanceArgs::parse(std::env::args().skip(1)).and_then(instance::main);
    if let Err(e) = result {
        eprintln!("rows-instance: {e}");
        std::process::exit(1);
    }
}
