# sqlite_script.awk - writes an SQL script for sqlite3: two tables filled by `rows` inserts
# (default 20000) and as many again into a second table, indexes, updates, deletes, and queries
# whose output is fully ordered, so it is the same on every run.
# Usage: awk -v rows=N -f sqlite_script.awk > script.sql
function next_value() {
    state = (state * 16807) % 2147483647
    return state
}
BEGIN {
    if (rows == "")
        rows = 20000
    state = 77
    print "PRAGMA journal_mode = WAL;"
    print "CREATE TABLE customer (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, note TEXT);"
    print "CREATE TABLE purchase (id INTEGER PRIMARY KEY, customer INTEGER REFERENCES customer(id),"
    print "                       item TEXT, amount REAL, quantity INTEGER);"
    print "BEGIN;"
    for (i = 1; i <= rows; i++) {
        v = next_value()
        printf "INSERT INTO customer VALUES (%d, 'customer %d', 'city%d', '%s');\n", i, v % 100000,
            v % 37, substr("abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz", 1 + v % 20, 10 + v % 40)
    }
    for (i = 1; i <= rows * 2; i++) {
        v = next_value()
        printf "INSERT INTO purchase VALUES (%d, %d, 'item-%d', %d.%02d, %d);\n", i, 1 + v % rows,
            v % 250, v % 500, v % 100, 1 + v % 9
    }
    print "COMMIT;"
    print "CREATE INDEX purchase_customer ON purchase(customer);"
    print "CREATE INDEX customer_city ON customer(city, name);"
    print "UPDATE purchase SET amount = amount * 1.5 WHERE quantity > 6;"
    print "DELETE FROM purchase WHERE item LIKE 'item-1_';"
    print "UPDATE customer SET note = note || note || note WHERE id % 7 = 0;"
    print ".mode list"
    print "SELECT count(*), sum(quantity), printf('%.2f', sum(amount)) FROM purchase;"
    print "SELECT city, count(*), max(length(note)) FROM customer GROUP BY city ORDER BY city;"
    print "SELECT c.id, c.name, count(p.id), printf('%.2f', sum(p.amount)) FROM customer c"
    print "  JOIN purchase p ON p.customer = c.id GROUP BY c.id ORDER BY sum(p.amount) DESC, c.id LIMIT 40;"
    print "SELECT item, group_concat(DISTINCT quantity) FROM (SELECT item, quantity FROM purchase ORDER BY quantity)"
    print "  GROUP BY item ORDER BY item LIMIT 60;"
    print "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000)"
    print "  SELECT count(*), sum(length(printf('%0*d', x % 300, x))) FROM n;"
    print "SELECT name FROM customer WHERE city = 'city5' ORDER BY name LIMIT 20;"
    print "VACUUM;"
    print "PRAGMA integrity_check;"
}
