-- +goose Up
-- A rule belongs to the organization of its performer, and rewriting it
-- never moves it to another: an upsert of a rule id whose performer is
-- another organization's fails, however two organizations' writes of the
-- same new id interleave. (The API checks first and answers 404; this is
-- what makes the check hold under concurrency.) Moving a performer itself
-- (AssignPerformer) moves its rules along, as it should.
-- +goose StatementBegin
CREATE FUNCTION rules_stay_in_org() RETURNS trigger AS $$
BEGIN
    IF (SELECT org_id FROM performers WHERE id = OLD.performer_id)
        IS DISTINCT FROM (SELECT org_id FROM performers WHERE id = NEW.performer_id) THEN
        RAISE EXCEPTION 'rule % belongs to another organization', OLD.id USING ERRCODE = 'CR001';
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER rules_stay_in_org BEFORE UPDATE OF performer_id ON rules
    FOR EACH ROW WHEN (OLD.performer_id IS DISTINCT FROM NEW.performer_id)
    EXECUTE FUNCTION rules_stay_in_org();

-- +goose Down
DROP TRIGGER rules_stay_in_org ON rules;
DROP FUNCTION rules_stay_in_org();
