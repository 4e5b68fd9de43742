-- +goose Up
-- The marketer console's live view (F24) shows offers as they are issued and
-- delivered. Each new offer, and each change of an offer's status or delivery
-- time, is announced on crescendo_offers as "<offer id> <status>" when its
-- transaction commits, so every replica's console streams it at once and in
-- commit order, which no timestamp cursor over the table would give.

-- +goose StatementBegin
CREATE FUNCTION notify_offer() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('crescendo_offers', NEW.id::text || ' ' || NEW.status);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd

CREATE TRIGGER offers_notify_insert AFTER INSERT ON offers
    FOR EACH ROW EXECUTE FUNCTION notify_offer();
CREATE TRIGGER offers_notify_update AFTER UPDATE OF status, delivered_at ON offers
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.delivered_at IS DISTINCT FROM NEW.delivered_at)
    EXECUTE FUNCTION notify_offer();

-- +goose Down
DROP TRIGGER offers_notify_update ON offers;
DROP TRIGGER offers_notify_insert ON offers;
DROP FUNCTION notify_offer();
