//! A throwaway PostgreSQL server for the benchmarks (`cargo xtask bench
//! ... --db postgres`), the tests' own (`e2e::postgres::Cluster`) but with
//! commits reaching the disk, as deployed: prints the URL of a new empty
//! database at start and for every line read on stdin; stops the server
//! when stdin closes.

fn main() {
    let cluster = e2e::postgres::Cluster::start_durable();
    println!("{}", cluster.database());
    for line in std::io::stdin().lines() {
        if line.is_err() {
            break;
        }
        println!("{}", cluster.database());
    }
    cluster.stop();
}
