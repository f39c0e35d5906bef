-- The stock a product was created with, so that an audit can prove on_hand = initial +
-- adjustments − units sold (committed reservations). Products created before this column
-- get the value that makes their history add up as it stands.
ALTER TABLE stock ADD COLUMN initial_on_hand BIGINT;

UPDATE stock s SET initial_on_hand = s.on_hand
    - COALESCE((SELECT sum(a.delta) FROM stock_adjustments a WHERE a.product_id = s.product_id), 0)
    + COALESCE((SELECT sum(l.quantity) FROM reservation_lines l
                  JOIN reservations r ON r.id = l.reservation_id
                 WHERE l.product_id = s.product_id AND r.state = 'committed'), 0);

ALTER TABLE stock ALTER COLUMN initial_on_hand SET NOT NULL;
