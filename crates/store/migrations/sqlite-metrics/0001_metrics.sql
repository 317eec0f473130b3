-- The metrics history's own database (metrics.db, beside berth.db): series and their points.
CREATE TABLE series (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    team TEXT NOT NULL,
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    metric TEXT NOT NULL,
    UNIQUE (scope, team, app, name, metric)
);

-- One bucket of one tier (its step) of one series: the aggregate of its samples.
CREATE TABLE points (
    series INTEGER NOT NULL,
    step_ms INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (series, step_ms, bucket)
) WITHOUT ROWID;
