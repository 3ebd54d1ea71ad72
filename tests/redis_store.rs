//! `RedisStore` against a real `redis-server` on loopback: authenticated values, the atomic
//! insert-if-absent, credentials and databases from the URL, the bounded call time, and the
//! outage/recovery cycle.

mod support;

use std::{
    net::{Ipv4Addr, TcpListener},
    sync::Arc,
    time::{Duration, Instant},
};

use portcullis::store::RedisStore;
use support::redis::{RedisServer, Reply};

const KEY: [u8; 32] = *b"shared key of the test replicas!";
const PREFIX: &str = "test:";

fn store(url: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .shared_key(KEY)
        .key_prefix(PREFIX)
        .timeout(Duration::from_secs(1))
        .backoff(Duration::from_millis(300))
        .build()
        .expect("valid store")
}

fn bulk(reply: Reply) -> Vec<u8> {
    match reply {
        Reply::Bulk(bytes) => bytes,
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

#[tokio::test]
async fn values_round_trip_sealed_under_the_prefix_and_expire() {
    let redis = RedisServer::start();
    let store = store(&redis.url());
    assert_eq!(store.get("k1").await, Ok(None), "nothing stored yet");
    store
        .set("k1", b"hello", Duration::from_secs(30))
        .await
        .expect("set");
    assert_eq!(store.get("k1").await, Ok(Some(b"hello".to_vec())));

    // In Redis: under the prefix, sealed (not the plain bytes), with the expiry asked for.
    let raw = bulk(redis.command(&[b"GET", b"test:k1"]));
    assert_ne!(raw, b"hello");
    assert!(
        raw.ends_with(b"hello") && raw.len() == 1 + 32 + 5,
        "{raw:?}"
    );
    let Reply::Int(pttl) = redis.command(&[b"PTTL", b"test:k1"]) else {
        panic!("PTTL")
    };
    assert!((29_000..=30_000).contains(&pttl), "{pttl}");
    assert_eq!(redis.command(&[b"EXISTS", b"k1"]), Reply::Int(0));

    // A replica with the same key reads it; one with another prefix does not see it.
    let other_replica = store_with(&redis.url(), PREFIX);
    assert_eq!(other_replica.get("k1").await, Ok(Some(b"hello".to_vec())));
    assert_eq!(store_with(&redis.url(), "else:").get("k1").await, Ok(None));

    store
        .set("short", b"v", Duration::from_millis(150))
        .await
        .expect("set");
    assert_eq!(store.get("short").await, Ok(Some(b"v".to_vec())));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.get("short").await, Ok(None), "expired");

    // A zero TTL stores nothing; a value over the cap is refused without I/O.
    store.set("zero", b"v", Duration::ZERO).await.expect("set");
    assert_eq!(redis.command(&[b"EXISTS", b"test:zero"]), Reply::Int(0));
    let small = RedisStore::builder()
        .url(redis.url())
        .shared_key(KEY)
        .key_prefix(PREFIX)
        .max_value_bytes(4)
        .build()
        .expect("valid");
    assert!(
        small
            .set("big", b"12345", Duration::from_secs(5))
            .await
            .is_err()
    );
    assert_eq!(redis.command(&[b"EXISTS", b"test:big"]), Reply::Int(0));
}

fn store_with(url: &str, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .url(url)
        .shared_key(KEY)
        .key_prefix(prefix)
        .build()
        .expect("valid store")
}

#[tokio::test]
async fn unauthenticated_foreign_garbled_and_oversized_values_are_misses() {
    let redis = RedisServer::start();
    let store = store(&redis.url());
    store
        .set("genuine", br#"{"active":true}"#, Duration::from_secs(30))
        .await
        .expect("set");
    let genuine = bulk(redis.command(&[b"GET", b"test:genuine"]));
    assert_eq!(
        store.get("genuine").await,
        Ok(Some(br#"{"active":true}"#.to_vec()))
    );

    // Sealed by a writer with another key.
    let intruder = RedisStore::builder()
        .url(redis.url())
        .shared_key(*b"a key the replicas do not share!")
        .key_prefix(PREFIX)
        .build()
        .expect("valid");
    intruder
        .set("foreign", br#"{"active":true}"#, Duration::from_secs(30))
        .await
        .expect("set");
    assert_eq!(
        intruder.get("foreign").await,
        Ok(Some(br#"{"active":true}"#.to_vec())),
        "the intruder reads its own value"
    );

    let mut flipped = genuine.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x20;
    // Sealed with the shared key, but longer than the reader accepts (64 KiB by default).
    let roomy = RedisStore::builder()
        .url(redis.url())
        .shared_key(KEY)
        .key_prefix(PREFIX)
        .max_value_bytes(1 << 20)
        .build()
        .expect("valid");
    let big = vec![b'x'; 64 * 1024 + 1];
    roomy
        .set("oversized", &big, Duration::from_secs(30))
        .await
        .expect("set");
    assert_eq!(roomy.get("oversized").await, Ok(Some(big)));
    let planted: [(&[u8], &[u8]); 5] = [
        (b"test:plain", br#"{"active":true}"#),
        (b"test:moved", &genuine),
        (b"test:flipped", &flipped),
        (b"test:cut", &genuine[..genuine.len() - 1]),
        (b"test:empty", b""),
    ];
    for (key, value) in planted {
        assert_eq!(
            redis.command(&[b"SET", key, value]),
            Reply::Simple("OK".into())
        );
    }
    assert_eq!(
        redis.command(&[b"RPUSH", b"test:list", b"x"]),
        Reply::Int(1)
    );
    for key in [
        "foreign",
        "plain",
        "moved",
        "flipped",
        "cut",
        "empty",
        "oversized",
        "list",
    ] {
        assert_eq!(store.get(key).await, Ok(None), "{key}");
    }
    assert!(store.in_use(), "a wrongly typed key is not an outage");
    assert_eq!(
        store.get("genuine").await,
        Ok(Some(br#"{"active":true}"#.to_vec()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_if_absent_has_exactly_one_winner_and_expires() {
    let redis = RedisServer::start();
    // Two replicas, each with its own connection.
    let replicas = [store(&redis.url()), store(&redis.url())];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let replica = replicas[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            replica
                .insert_if_absent("dpop:abc", Duration::from_millis(500))
                .await
        }));
    }
    let mut winners = 0;
    for task in tasks {
        if task.await.expect("task").expect("Redis answers") {
            winners += 1;
        }
    }
    assert_eq!(winners, 1, "exactly one caller records the key");
    let Reply::Int(pttl) = redis.command(&[b"PTTL", b"test:dpop:abc"]) else {
        panic!("PTTL")
    };
    assert!((1..=500).contains(&pttl), "{pttl}");
    assert_eq!(
        replicas[0]
            .insert_if_absent("dpop:other", Duration::from_secs(5))
            .await,
        Ok(true),
        "another key is independent"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        replicas[1]
            .insert_if_absent("dpop:abc", Duration::from_secs(5))
            .await,
        Ok(true),
        "recorded again once expired"
    );
}

#[tokio::test]
async fn credentials_and_database_come_from_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "hunter2"]);
    let port = redis.port();

    let without = store(&format!("redis://127.0.0.1:{port}/"));
    assert!(without.get("k").await.is_err(), "NOAUTH is a failure");
    assert!(!without.in_use());

    let wrong = store(&format!("redis://:wrong@127.0.0.1:{port}/"));
    let error = wrong.get("k").await.expect_err("wrong password");
    assert!(!error.to_string().contains("wrong"), "{error}");

    let in_db_3 = store(&format!("redis://:hunter2@127.0.0.1:{port}/3"));
    assert_eq!(in_db_3.database(), 3);
    in_db_3
        .set("k", b"three", Duration::from_secs(30))
        .await
        .expect("authenticated set");
    let in_db_5 = RedisStore::builder()
        .url(format!("redis://:hunter2@127.0.0.1:{port}/3"))
        .database(5)
        .shared_key(KEY)
        .key_prefix(PREFIX)
        .build()
        .expect("valid");
    assert_eq!(in_db_5.get("k").await, Ok(None), "another database");
    assert_eq!(redis.command_in(0, &[b"EXISTS", b"test:k"]), Reply::Int(0));
    assert_eq!(redis.command_in(3, &[b"EXISTS", b"test:k"]), Reply::Int(1));
    assert_eq!(in_db_3.get("k").await, Ok(Some(b"three".to_vec())));
    assert!(!format!("{in_db_3:?}").contains("hunter2"));
}

#[tokio::test]
async fn an_outage_fails_fast_and_recovery_needs_no_restart() {
    let mut redis = RedisServer::start();
    let store = store(&redis.url());
    store
        .set("k", b"v", Duration::from_secs(60))
        .await
        .expect("set");
    assert!(store.in_use());

    redis.stop();
    let started = Instant::now();
    let error = store.get("k").await.expect_err("Redis is down");
    assert!(started.elapsed() < Duration::from_secs(2), "bounded");
    assert!(!store.in_use(), "{error}");
    // Within the back-off, calls fail at once, without I/O.
    let started = Instant::now();
    for _ in 0..100 {
        assert!(
            store
                .insert_if_absent("j", Duration::from_secs(1))
                .await
                .is_err()
        );
    }
    assert!(started.elapsed() < Duration::from_millis(200));

    redis.restart();
    // The store comes back by itself: a probe after each back-off, until one succeeds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if store
            .set("k", b"again", Duration::from_secs(60))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Redis not used again within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.in_use());
    assert_eq!(store.get("k").await, Ok(Some(b"again".to_vec())));
}

#[tokio::test]
async fn a_silent_server_is_bounded_by_the_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8).flatten() {
            keep.lock().expect("lock").push(stream);
        }
    });
    let store = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{port}/"))
        .shared_key(KEY)
        .timeout(Duration::from_millis(200))
        .build()
        .expect("valid");
    let started = Instant::now();
    let error = store.get("k").await.expect_err("no answer");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(1),
        "{took:?}"
    );
    assert!(error.to_string().contains("Redis"), "{error}");
    assert!(!store.in_use());
}
