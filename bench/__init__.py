"""Benchmarks (see docs/benchmarks.md for how to run and read them).

Entry scripts, each run as `.venv/bin/python bench/<name>.py`:
    throughput.py       onnxq vs bare Celery vs raw ONNX Runtime; its steps and report text
                        are in throughput_*.py
    load.py             sync predict and submits vs the bare Flask floor; load_client.py,
                        load_phases.py and load_report.py
    variants.py         the single-row path under other settings
    closed_loop.py      issue 12's targets: 16 closed-loop clients and a burst, onnxq vs bare
                        Celery in alternating pairs; closed_loop_client.py (one client process),
                        closed_loop_phase.py (one measured phase), closed_loop_report.py
    gateway_profile.py  CPU of one submit and one poll inside the Flask app
    drift.py            drift check speed and memory

Shared by them:
    processes.py  every child process bench/ starts (services, py-spy, commands, its redis-server)
    stack.py      the servers: onnxq, the bare Celery worker, the floor; their /metrics
    meters.py     CPU by process group, Redis commands, RSS, percentiles
    model.py      the demo model, its rows, an ONNX Runtime session
    job_client.py onnxq's job client (submit + poll threads) and what its traces say
    pyspy.py      py-spy recording and its summaries
    report.py     the one writer of docs/benchmarks.md's generated sections, and Markdown tables
Services they start: bare_celery.py (the bare Celery app), floor_app.py (the Flask floor).
"""
