"""The CRM-facing commands as a RevOps admin runs them: fields create, check, run, status."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from support import World


@pytest.fixture
def world(tmp_path):
    world = World(tmp_path)
    yield world
    world.close()


def closedloop(world, *args, config=None):
    return subprocess.run([sys.executable, "-m", "sync.cli", *args, "--config", str(config or world.config_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **world.environ, "COLUMNS": "200"})


def test_fields_create_then_check(world, tmp_path):
    before = closedloop(world, "check")
    assert before.returncode == 2
    assert "no such field in salesforce — run `closedloop fields create`" in before.stderr
    assert "CL_First_Click_Channel__c (first_click_channel)" in before.stderr
    created = closedloop(world, "fields", "create")
    assert created.returncode == 0, created.stderr
    assert "salesforce: created Lead.CL_First_Click_Channel__c" in created.stdout
    assert "hubspot: created contacts.cl_first_click_channel" in created.stdout
    again = closedloop(world, "fields", "create")
    assert "salesforce: 0 field(s) created" in again.stdout and "hubspot: 0 field(s) created" in again.stdout
    after = closedloop(world, "check")
    assert after.returncode == 0, after.stderr
    assert "salesforce: credentials ok; mapping" in after.stdout and "ok" in after.stdout


def test_check_names_the_mapping_line_at_fault(world, tmp_path):
    closedloop(world, "fields", "create")
    mapping = tmp_path / "my-salesforce.toml"
    mapping.write_text('crm = "salesforce"\n\n[[object]]\nobject = "Lead"\n\n[object.fields]\n'
                       'first_click_source = "CL_First_Click_Source__c"\nlast_click_source = "LeadSource"\n'
                       'visit_count = "CL_Nope__c"\n')
    config = tmp_path / "custom.toml"
    config.write_text(world.config_path.read_text().replace('permission_set = "Closedloop_Integration"',
                                                            'permission_set = "Closedloop_Integration"\n'
                                                            f'mapping = "{mapping}"'))
    result = closedloop(world, "check", config=config)
    assert result.returncode == 2
    assert f"{mapping}:9: Lead.CL_Nope__c (visit_count): no such field in salesforce" in result.stderr
    assert "LeadSource" not in result.stderr  # an unrestricted picklist can hold free text


def test_budget_pause_shows_in_status(world):
    closedloop(world, "fields", "create")
    world.salesforce.set_api_usage(8000, 10000)
    world.salesforce.create("Lead", {"LastName": "Budget", "Company": "X", "Email": "b@x.example"})
    run = closedloop(world, "run", "--once")
    assert run.returncode == 0, run.stderr  # a used-up allowance pauses; it is not a failure
    status = closedloop(world, "status")
    assert "enrich" in status.stdout
    line = next(line for line in status.stdout.splitlines() if line.startswith("│ salesforce"))
    assert "paused: budget" in line and re.search(r"│ 80\d\d/10000 \(80%; pauses at 50%\), \d+s ago", line)
    assert re.search(r"│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC │$", line)  # when it is looked at again
    assert "Salesforce: 80" in line  # the last error, folded in its column
    hubspot = next(line for line in status.stdout.splitlines() if line.startswith("│ hubspot"))
    assert "│ ok " in hubspot


def test_a_mapping_that_dead_letters_is_caught_by_check_and_fails_the_run(world, tmp_path):
    """A value the CRM refuses (journey data mapped onto an Email field) used to dead-letter
    silently while `run --once` printed ok and exited 0."""
    from test_enrich import journey

    closedloop(world, "fields", "create")
    mapping = tmp_path / "emails.toml"
    mapping.write_text('crm = "salesforce"\n\n[[object]]\nobject = "Lead"\nmatch = { visitor_id = "CL_Visitor_Id__c" }'
                       '\n\n[object.fields]\nfirst_click_source = "CL_First_Click_Source__c"\n'
                       'last_click_channel = { field = "Email", policy = "overwrite" }\n')
    config = tmp_path / "emails-config.toml"
    config.write_text(world.config_path.read_text().replace('permission_set = "Closedloop_Integration"',
                                                            'permission_set = "Closedloop_Integration"\n'
                                                            f'mapping = "{mapping}"'))
    check = closedloop(world, "check", config=config)
    assert check.returncode == 2
    assert f"{mapping}:9: Lead.Email (last_click_channel): an email field holds only email addresses" in check.stderr
    journey(world, "visitor7001", "dee@x.example")
    lead = world.salesforce.create("Lead", {"LastName": "Dee", "Company": "X", "Email": "dee@x.example",
                                            "CL_Visitor_Id__c": "visitor7001"})
    run = closedloop(world, "run", "--once", config=config)
    assert run.returncode == 1
    assert "enrich: ok (read 1, wrote 0" in run.stdout
    assert "closedloop: error: 1 record(s) or event(s) were dead-lettered in this run: see why with " \
           "`closedloop dead-letters list`" in run.stderr
    assert "Traceback" not in run.stderr
    listed = closedloop(world, "dead-letters", "list", config=config)
    assert lead in listed.stdout and "INVALID_EMAIL_ADDRESS" in listed.stdout


def test_a_paused_remote_fails_the_run_and_says_what_waits(world):
    closedloop(world, "fields", "create")
    world.salesforce.refuse_logins(True)
    run = closedloop(world, "run", "--once")
    assert run.returncode == 1
    assert "closedloop: error: salesforce paused (credentials refused) until " in run.stderr
    assert "invalid_grant" in run.stderr and "its work waits (`closedloop status`)" in run.stderr
    assert "enrich: paused" in run.stdout and "hubspot" not in run.stderr
