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


def closedloop(world, *args, config=None, columns=200):
    return subprocess.run([sys.executable, "-m", "sync.cli", *args, "--config", str(config or world.config_path)],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **world.environ, "COLUMNS": str(columns)})


def with_salesforce_mapping(world, config, mapping: str):
    """A copy of the world's config whose [salesforce] mapping is ``mapping``."""
    config.write_text(world.config_path.read_text().replace('permission_set = "Closedloop_Integration"',
                                                            'permission_set = "Closedloop_Integration"\n'
                                                            f'mapping = "{mapping}"'))
    return config


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
    config = with_salesforce_mapping(world, tmp_path / "custom.toml", str(mapping))
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


def test_typos_are_questions_not_new_fields(world, tmp_path):
    """A misspelt field is never created beside the real one: check asks "did you mean ...?" with
    the file and line, fields create leaves it alone (and the standard-field loop is gone)."""
    assert closedloop(world, "fields", "create").returncode == 0
    mapping = tmp_path / "typos.toml"
    mapping.write_text('crm = "salesforce"\n\n'                                        # 1-2
                       '[[object]]\nobject = "Lead"\n'                                  # 3-4
                       'match = { visitor_id = "CL_Visitor_ID__C", email = "Emial" }\n'  # 5
                       '\n[object.fields]\n'                                             # 6-7
                       'first_click_channel = "CL_First_Click_Chanel__c"\n'              # 8
                       'last_click_source = "LeadSorce"\n'                               # 9
                       'visit_count = "NumberOfVisits"\n'                                # 10
                       'first_click_source = "CL_Brand_New_Field__c"\n'                  # 11
                       '\n[[object]]\nobject = "Leed"\n'                                 # 12-14
                       '[object.fields]\nvisit_count = "CL_Visit_Count__c"\n')           # 15-16
    config = with_salesforce_mapping(world, tmp_path / "typos-config.toml", mapping.name)  # relative to the config
    check = closedloop(world, "check", config=config)
    assert check.returncode == 2
    lines = check.stderr.splitlines()
    assert f"  {mapping}:5: Lead.CL_Visitor_ID__C (match.visitor_id): no such field in salesforce as written — " \
           "did you mean 'CL_Visitor_Id__c'? (Salesforce ignores case, so it is that field; closedloop needs the " \
           "name exactly as the CRM spells it)" in lines
    assert any(line.startswith(f"  {mapping}:5: Lead.Emial (match.email): no such field in salesforce — did you "
                               "mean 'Email'?") for line in lines)
    assert any(line.startswith(f"  {mapping}:8: Lead.CL_First_Click_Chanel__c (first_click_channel): no such field "
                               "in salesforce — did you mean 'CL_First_Click_Channel__c'?") for line in lines)
    assert f"  {mapping}:9: Lead.LeadSorce (last_click_source): no such field in salesforce — did you mean " \
           "'LeadSource'? (a standard field cannot be created)" in lines
    assert f"  {mapping}:10: Lead.NumberOfVisits (visit_count): no such field in salesforce, and it is a standard " \
           "field (it does not end in __c), which `closedloop fields create` cannot make: check the spelling " \
           "against the CRM's field list" in lines
    assert f"  {mapping}:11: Lead.CL_Brand_New_Field__c (first_click_source): no such field in salesforce — run " \
           "`closedloop fields create`, and check the integration user can see it" in lines
    assert f"  {mapping}:13: object 'Leed' is not one closedloop enriches in salesforce (Lead, Contact, " \
           "Opportunity) — did you mean 'Lead'?" in lines

    create = closedloop(world, "fields", "create", config=config)
    assert create.returncode == 2
    assert "salesforce: created Lead.CL_Brand_New_Field__c" in create.stdout  # the one really new field
    assert "CL_First_Click_Chanel__c" not in world.salesforce.org.schema["Lead"].fields
    refused = create.stderr.splitlines()
    assert any(line.startswith(f"  {mapping}:8: Lead.CL_First_Click_Chanel__c (first_click_channel): not created: "
                               "no such field in salesforce — did you mean 'CL_First_Click_Channel__c'?")
               for line in refused)
    assert any(line.startswith(f"  {mapping}:10: Lead.NumberOfVisits (visit_count): not created:") for line in refused)
    assert any(line.startswith(f"  {mapping}:13: object 'Leed' is not one") for line in refused)

    forced = closedloop(world, "fields", "create", "--force", config=config)
    assert "salesforce: created Lead.CL_First_Click_Chanel__c" in forced.stdout  # the admin said both are meant
    assert "LeadSorce" in forced.stderr and forced.returncode == 2  # a standard field is never created
    assert "CL_Visitor_ID__C" in forced.stderr  # nor a second spelling of one Salesforce field


def test_status_fits_80_columns_with_cursors_as_ages_and_wide_shows_every_column(world):
    world.create_fields()
    world.salesforce.create("Lead", {"LastName": "Status", "Company": "X", "Email": "s@x.example"})
    assert closedloop(world, "run", "--once").returncode == 0
    narrow = closedloop(world, "status", columns=80)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, narrow.stdout
    enrich = "".join(line for line in lines if "│ enrich" in line)
    assert "salesforce polled" in narrow.stdout and "salesforce Lead" in narrow.stdout
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d", narrow.stdout)  # cursors as ages, not raw timestamps
    assert "ok" in enrich and "not shown at this width:" in narrow.stdout
    wide = closedloop(world, "status", "--wide", columns=80)
    assert wide.returncode == 0 and "not shown at this width" not in wide.stdout
    assert all(column in wide.stdout for column in ("took", "wrote", "backlog", "dead letters"))
