-- Every change to a task is announced on channel `cone_task`, so that a replica whose client long-polls a task
-- learns at once of a decision or provisioning step that another replica made.
CREATE FUNCTION cone_task_changed() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('cone_task', NEW.id::text);
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER tasks_notify AFTER INSERT OR UPDATE ON tasks FOR EACH ROW EXECUTE FUNCTION cone_task_changed();
