-- Keys cannot be turned back into the absolute URLs they came from (the
-- public URL of the time is not recorded): going down leaves them as keys.
SELECT 1;
