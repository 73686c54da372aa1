#[inline(never)]
fn run(q: &leasequeue::Queue<u64>, n: u64) {
    for i in 0..n {
        q.push(i).unwrap();
        q.try_lease().unwrap().ack().unwrap();
    }
}
fn main() {
    let n: u64 = std::env::args().nth(1).unwrap().parse().unwrap();
    let q = leasequeue::Queue::<u64>::new();
    run(&q, 10);
    run(&q, n);
}
