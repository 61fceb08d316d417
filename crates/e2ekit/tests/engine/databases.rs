//! The database servers of the catalog (`db::redis`, `db::postgres`, `db::mariadb`) run for
//! real on their offline stand-in images (Debian's packages in the official images' layouts,
//! no registry), each with its exporter, and a real client round trip from the test process:
//! the configured credentials and database work, a wrong password is refused.

use std::time::Instant;

use e2ekit::db;
use e2ekit::prelude::*;

use crate::common::leftovers;

/// An exporter image from its Debian package, the binary linked where the official image
/// has it.
async fn exporter_image(env: &Environment, package: &str, at: &str) -> Result<String> {
    HostImage::debian_package(format!("e2ekit-test/{package}"), package)
        .unwrap_or_else(|e| panic!("{e} (cargo xtask test installs it)"))
        .symlink(at, format!("/usr/bin/{package}"))
        .build(env)
        .await
}

fn stand_in(image: Result<HostImage>) -> HostImage {
    image.unwrap_or_else(|e| panic!("{e} (cargo xtask test installs the packages)"))
}

// A password with characters that must be escaped in a URL and quoted in SQL and shell.
const PASSWORD: &str = "p@ss w:rd/'\"%";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_answers_with_its_password_and_refuses_a_wrong_one() -> Result<()> {
    let began = Instant::now();
    let env = Environment::builder()
        .name("e2ekit-t-db-redis")
        .build()
        .await?;
    let image = stand_in(db::redis::debian_image()).build(&env).await?;
    let exporter = exporter_image(&env, "prometheus-redis-exporter", "/redis_exporter").await?;
    let cache = db::redis(
        &env,
        "cache",
        db::Options::new()
            .image(image)
            .password(PASSWORD)
            .database("3")
            .exporter_image(exporter),
    )?;
    let exporter = cache.exporter().expect("asked for an exporter");
    start_and_wait_ready(&[&cache, exporter]).await?;

    let url = cache.url()?;
    let (host, port) = cache.host_port()?;
    assert_eq!(
        url,
        format!("redis://:p%40ss%20w%3Ard%2F%27%22%25@{host}:{port}/3")
    );
    assert_eq!(cache.password(), Some(PASSWORD));
    let client = redis::Client::open(url.as_str()).expect("a valid redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let _: () = redis::cmd("SET")
        .arg("greeting")
        .arg("hello")
        .query_async(&mut conn)
        .await
        .expect("SET");
    let value: String = redis::cmd("GET")
        .arg("greeting")
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert_eq!(value, "hello");
    // The URL's database number is the one selected.
    let keys: i64 = redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE");
    assert_eq!(keys, 1);

    // Without the password, and with a wrong one, nothing is answered.
    let anonymous = redis::Client::open(format!("redis://{host}:{port}/0")).expect("URL");
    let mut anonymous = anonymous
        .get_multiplexed_async_connection()
        .await
        .expect("connecting without a password");
    let err = redis::cmd("GET")
        .arg("greeting")
        .query_async::<Option<String>>(&mut anonymous)
        .await
        .expect_err("no password");
    assert!(err.to_string().contains("NOAUTH"), "{err}");
    let wrong = redis::Client::open(format!("redis://:wrong@{host}:{port}/0")).expect("URL");
    let err = wrong
        .get_multiplexed_async_connection()
        .await
        .expect_err("a wrong password");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("authentication failed") || text.contains("wrongpass"),
        "{err}"
    );

    exporter
        .wait_sum_metrics(equals(1.0), ["redis_up"])
        .await
        .unwrap_or_else(|e| panic!("the exporter never saw redis: {}", e.report()));
    assert!(cache
        .internal_url()?
        .contains("@e2ekit-t-db-redis-cache:6379/3"));
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-db-redis"), (0, 0));
    eprintln!("redis test took {:?}", began.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serves_its_user_and_database_and_refuses_a_wrong_password() -> Result<()> {
    let began = Instant::now();
    let env = Environment::builder()
        .name("e2ekit-t-db-postgres")
        .build()
        .await?;
    let image = stand_in(db::postgres::debian_image()).build(&env).await?;
    let exporter = exporter_image(
        &env,
        "prometheus-postgres-exporter",
        "/bin/postgres_exporter",
    )
    .await?;
    let pg = db::postgres(
        &env,
        "pg",
        db::Options::new()
            .image(image.clone())
            .user("app")
            .password(PASSWORD)
            .database("orders")
            .flag("--max_connections", "20"),
    )?;
    // A second server for the exporter: Debian's exporter (0.11) cannot parse a password
    // with a space or a quote (its DSN parsing splits on them), so this one has a plainer one.
    let watched = db::postgres(
        &env,
        "pg-watched",
        db::Options::new()
            .image(image)
            .password("p@ss:w/rd%")
            .exporter_image(exporter),
    )?;
    let exporter = watched.exporter().expect("asked for an exporter");
    assert!(pg.exporter().is_none());
    start_and_wait_ready(&[&pg, &watched, exporter]).await?;

    let url = pg.url()?;
    let (host, port) = pg.host_port()?;
    assert_eq!(
        url,
        format!("postgres://app:p%40ss%20w%3Ard%2F%27%22%25@{host}:{port}/orders")
    );
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let connection = tokio::spawn(connection);
    let row = client
        .query_one("SELECT current_user::text, current_database()::text", &[])
        .await
        .expect("who am I");
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("app".to_string(), "orders".to_string())
    );
    client
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        .await
        .expect("CREATE TABLE");
    client
        .execute(
            "INSERT INTO items VALUES ($1, $2), ($3, $4)",
            &[&1i32, &"apple", &2i32, &"pear"],
        )
        .await
        .expect("INSERT");
    let names: Vec<String> = client
        .query("SELECT name FROM items ORDER BY id", &[])
        .await
        .expect("SELECT")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(names, ["apple", "pear"]);
    // Flags reach the server.
    let max: String = client
        .query_one("SHOW max_connections", &[])
        .await
        .expect("SHOW")
        .get(0);
    assert_eq!(max, "20");
    drop(client);
    let _ = connection.await;

    let wrong = format!("postgres://app:wrong@{host}:{port}/orders");
    let Err(err) = tokio_postgres::connect(&wrong, tokio_postgres::NoTls).await else {
        panic!("a wrong password was accepted");
    };
    let text = format!("{err:?}");
    assert!(text.contains("password authentication failed"), "{text}");

    exporter
        .wait_sum_metrics(equals(1.0), ["pg_up"])
        .await
        .unwrap_or_else(|e| panic!("the exporter never saw postgres: {}", e.report()));
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-db-postgres"), (0, 0));
    eprintln!("postgres test took {:?}", began.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_serves_its_user_and_database_and_refuses_a_wrong_password() -> Result<()> {
    use mysql_async::prelude::Queryable;

    let began = Instant::now();
    let env = Environment::builder()
        .name("e2ekit-t-db-mariadb")
        .build()
        .await?;
    let image = stand_in(db::mariadb::debian_image()).build(&env).await?;
    let exporter =
        exporter_image(&env, "prometheus-mysqld-exporter", "/bin/mysqld_exporter").await?;
    let sql = db::mariadb(
        &env,
        "sql",
        db::Options::new()
            .image(image.clone())
            .user("app")
            .password(PASSWORD)
            .database("orders")
            .exporter_image(exporter),
    )?;
    // Root alone: the official entrypoint takes root's password only from
    // MARIADB_ROOT_PASSWORD.
    let root = db::mariadb(
        &env,
        "sql-root",
        db::Options::new()
            .image(image)
            .user("root")
            .password("r00t")
            .flag("--max-connections", "20"),
    )?;
    let exporter = sql.exporter().expect("asked for an exporter");
    start_and_wait_ready(&[&sql, &root, exporter]).await?;

    let url = sql.url()?;
    let (host, port) = sql.host_port()?;
    assert_eq!(
        url,
        format!("mysql://app:p%40ss%20w%3Ard%2F%27%22%25@{host}:{port}/orders")
    );
    let opts = mysql_async::Opts::from_url(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
    let mut conn = mysql_async::Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    let who: Option<(String, String)> = conn
        .query_first("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1), DATABASE()")
        .await
        .expect("who am I");
    assert_eq!(who, Some(("app".to_string(), "orders".to_string())));
    conn.query_drop("CREATE TABLE items (id INT PRIMARY KEY, name TEXT NOT NULL)")
        .await
        .expect("CREATE TABLE");
    conn.exec_drop(
        "INSERT INTO items VALUES (?, ?), (?, ?)",
        (1, "apple", 2, "pear"),
    )
    .await
    .expect("INSERT");
    let names: Vec<String> = conn
        .query("SELECT name FROM items ORDER BY id")
        .await
        .expect("SELECT");
    assert_eq!(names, ["apple", "pear"]);
    // The user's privileges are on its database only.
    let err = conn
        .query_drop("CREATE DATABASE other")
        .await
        .expect_err("no privileges beyond its database");
    assert!(err.to_string().contains("denied"), "{err}");
    conn.disconnect().await.expect("disconnecting");

    let wrong = format!("mysql://app:wrong@{host}:{port}/orders");
    let Err(err) = mysql_async::Conn::new(mysql_async::Opts::from_url(&wrong).expect("URL")).await
    else {
        panic!("a wrong password was accepted");
    };
    assert!(err.to_string().contains("Access denied"), "{err}");

    let mut conn = mysql_async::Conn::new(mysql_async::Opts::from_url(&root.url()?).expect("URL"))
        .await
        .unwrap_or_else(|e| panic!("connecting as root: {e}"));
    let who: Option<(String, String, u32)> = conn
        .query_first("SELECT CURRENT_USER(), DATABASE(), @@max_connections")
        .await
        .expect("who am I");
    assert_eq!(
        who,
        Some(("root@%".to_string(), "test".to_string(), 20)),
        "root over TCP, the default database, the flag applied"
    );
    conn.disconnect().await.expect("disconnecting");

    exporter
        .wait_sum_metrics(equals(1.0), ["mysql_up"])
        .await
        .unwrap_or_else(|e| panic!("the exporter never saw mariadb: {}", e.report()));
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-db-mariadb"), (0, 0));
    eprintln!("mariadb test took {:?}", began.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_database_options_are_clear_errors_that_leave_nothing() -> Result<()> {
    let env = Environment::builder()
        .name("e2ekit-t-db-bad")
        .build()
        .await?;
    let cases: Vec<(&str, Result<()>, &str)> = vec![
        (
            "redis user",
            db::redis(&env, "db", db::Options::new().user("alice")).map(drop),
            "user \"alice\" is not supported",
        ),
        (
            "redis database",
            db::redis(&env, "db", db::Options::new().database("orders")).map(drop),
            "must be a number",
        ),
        (
            "postgres password",
            db::postgres(&env, "db", db::Options::new().password("")).map(drop),
            "the password of database runnable \"db\" is empty",
        ),
        (
            "mariadb database",
            db::mariadb(&env, "db", db::Options::new().database("a\nb")).map(drop),
            "the database of database runnable \"db\" contains a NUL or line break",
        ),
    ];
    for (what, result, expected) in cases {
        let err = result.expect_err(what);
        assert!(matches!(err, Error::InvalidArgument(_)), "{what}: {err:?}");
        assert!(err.to_string().contains(expected), "{what}: {err}");
    }
    // Nothing was registered: the name is still free, and no container exists.
    let image = crate::common::busybox(&env).await?;
    env.runnable("db").init(StartOptions::new(image))?;
    assert_eq!(leftovers(env.name()).0, 0, "no container was created");
    env.close().await;
    assert_eq!(leftovers("e2ekit-t-db-bad"), (0, 0));
    Ok(())
}
