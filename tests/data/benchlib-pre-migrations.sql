-- A benchlib database from before migrations (commit 7b82f41's records.py, SQLModel
-- create_all), with one run, cell, candidate and score: tests/test_db.py upgrades it.
BEGIN TRANSACTION;
CREATE TABLE cachedresponse (
	"key" VARCHAR NOT NULL, 
	model VARCHAR NOT NULL, 
	result JSON, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE candidate (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	cell_id VARCHAR NOT NULL, 
	"index" INTEGER NOT NULL, 
	step VARCHAR NOT NULL, 
	step_index INTEGER NOT NULL, 
	seed INTEGER NOT NULL, 
	messages JSON, 
	error VARCHAR, 
	cached BOOLEAN NOT NULL, 
	text VARCHAR NOT NULL, 
	parsed JSON, 
	parse_error VARCHAR, 
	output_hash VARCHAR NOT NULL, 
	finish_reason VARCHAR NOT NULL, 
	latency_s FLOAT NOT NULL, 
	prompt_tokens INTEGER NOT NULL, 
	completion_tokens INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(cell_id) REFERENCES cell (id)
);
INSERT INTO "candidate" VALUES(1,'run-before-migrations','cell-1',0,'output',0,42,'[{"role": "user", "content": "hi"}]',NULL,0,'Drink water.','null',NULL,'o','',0.0,0,0);
CREATE TABLE cell (
	id VARCHAR NOT NULL, 
	run_id VARCHAR NOT NULL, 
	"index" INTEGER NOT NULL, 
	model VARCHAR NOT NULL, 
	model_size_b FLOAT, 
	model_digest VARCHAR, 
	prompt_version VARCHAR NOT NULL, 
	prompt_hash VARCHAR NOT NULL, 
	scenario_id VARCHAR NOT NULL, 
	scenario_hash VARCHAR NOT NULL, 
	rubric_version VARCHAR NOT NULL, 
	rubric_hash VARCHAR NOT NULL, 
	params JSON, 
	identity VARCHAR NOT NULL, 
	scenario_vars JSON, 
	steps JSON, 
	status VARCHAR(9) NOT NULL, 
	error VARCHAR, 
	model_load_s FLOAT NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	mlflow_run_id VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id)
);
INSERT INTO "cell" VALUES('cell-1','run-before-migrations',0,'local:smollm2-135m',NULL,NULL,'v1','p','s1','h','r1','rh','{"temperature": 0.7}','i','{}','["output"]','completed',NULL,0.0,NULL,NULL,NULL);
CREATE TABLE judgement (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	candidate_id INTEGER NOT NULL, 
	judge VARCHAR NOT NULL, 
	rubric_version VARCHAR NOT NULL, 
	rubric_hash VARCHAR NOT NULL, 
	scores JSON, 
	comment VARCHAR NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(candidate_id) REFERENCES candidate (id)
);
CREATE TABLE llmcall (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	cell_id VARCHAR NOT NULL, 
	candidate_index INTEGER NOT NULL, 
	step VARCHAR NOT NULL, 
	attempt INTEGER NOT NULL, 
	model VARCHAR NOT NULL, 
	started_at DATETIME NOT NULL, 
	latency_s FLOAT NOT NULL, 
	status_code INTEGER, 
	error VARCHAR, 
	request JSON, 
	response JSON, 
	prompt_tokens INTEGER NOT NULL, 
	completion_tokens INTEGER NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(cell_id) REFERENCES cell (id)
);
CREATE TABLE run (
	id VARCHAR NOT NULL, 
	suite VARCHAR NOT NULL, 
	experiment VARCHAR NOT NULL, 
	config JSON, 
	rubric JSON, 
	status VARCHAR(14) NOT NULL, 
	error VARCHAR, 
	n_cells INTEGER NOT NULL, 
	flow_run_id VARCHAR, 
	mlflow_run_id VARCHAR, 
	leaderboard JSON, 
	eval_report JSON, 
	scored_at DATETIME, 
	created_at DATETIME NOT NULL, 
	started_at DATETIME, 
	finished_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "run" VALUES('run-before-migrations','prompts/tips','benchlib-tips','{"models": ["local:smollm2-135m"]}','{"version": "r1"}','completed',NULL,1,NULL,NULL,'null','null',NULL,'2026-12-01 21:05:26.069935',NULL,NULL);
CREATE TABLE score (
	id INTEGER NOT NULL, 
	run_id VARCHAR NOT NULL, 
	cell_id VARCHAR NOT NULL, 
	candidate_id INTEGER NOT NULL, 
	name VARCHAR NOT NULL, 
	value FLOAT NOT NULL, 
	explanation VARCHAR NOT NULL, 
	version VARCHAR NOT NULL, 
	formula VARCHAR, 
	PRIMARY KEY (id), 
	FOREIGN KEY(run_id) REFERENCES run (id), 
	FOREIGN KEY(cell_id) REFERENCES cell (id), 
	FOREIGN KEY(candidate_id) REFERENCES candidate (id)
);
INSERT INTO "score" VALUES(1,'run-before-migrations','cell-1',1,'length',1.0,'','scoring-v1',NULL);
CREATE INDEX ix_cachedresponse_model ON cachedresponse (model);
CREATE INDEX ix_cell_run_id ON cell (run_id);
CREATE INDEX ix_cell_identity ON cell (identity);
CREATE INDEX ix_candidate_run_id ON candidate (run_id);
CREATE INDEX ix_candidate_cell_id ON candidate (cell_id);
CREATE INDEX ix_llmcall_run_id ON llmcall (run_id);
CREATE INDEX ix_llmcall_cell_id ON llmcall (cell_id);
CREATE INDEX ix_score_run_id ON score (run_id);
CREATE INDEX ix_score_candidate_id ON score (candidate_id);
CREATE INDEX ix_score_cell_id ON score (cell_id);
CREATE INDEX ix_judgement_run_id ON judgement (run_id);
CREATE INDEX ix_judgement_candidate_id ON judgement (candidate_id);
COMMIT;
