"""The web's queries on PostgreSQL too: a selection of the page tests re-run with the app,
the flow store and the fixtures on a fresh PostgreSQL database (the other modules use SQLite)."""
from __future__ import annotations

import pytest

from tests.web.test_agents import test_edit_skills_languages_queues_and_audit  # noqa: F401
from tests.web.test_agents import test_delete_page_is_admin_only_audited_and_notified  # noqa: F401
from tests.web.test_api_agents import test_create_shows_the_sip_password_once_and_notifies  # noqa: F401
from tests.web.test_api_callbacks import test_cancel_audited, test_list_with_filters_and_attempts  # noqa: F401
from tests.web.test_api import test_patch_queue_validated_and_audited, test_token_reads_and_publishes_flows  # noqa: F401
from tests.web.test_callbacks import (test_a_callback_being_dialled_is_not_cancelled,  # noqa: F401
                                      test_cancel_pending_is_audited, test_cancels_racing_serves_claims_never_both_win,
                                      test_list_filters_and_attempts)
from tests.web.test_pop_context import (test_a_campaign_transfer_pops_the_campaign_and_the_reply,  # noqa: F401
                                        test_an_ivr_callback_pops_its_reason_entry_time_and_the_callers_profile)
from tests.web.test_auth import test_first_admin_is_generated_once, test_login_logout  # noqa: F401
from tests.web.test_calendars import test_create_then_import_ics_and_csv, test_delete_a_closed_day  # noqa: F401
from tests.web.test_customers import test_import_reports_every_row  # noqa: F401
from tests.web.test_flows import test_versions_rollback_and_diff  # noqa: F401
from tests.web.test_live import test_screen_pop_of_the_ringing_call  # noqa: F401
from tests.web.test_reports import test_agent_csv, test_interval_csv, test_nps_per_queue_and_agent  # noqa: F401
from tests.web.test_users import test_admin_creates_a_user_with_a_generated_password  # noqa: F401

# the autouse data fixtures of those modules
from tests.web.test_agents import agents, notified  # noqa: F401
from tests.web.test_api import queue  # noqa: F401
from tests.web.test_callbacks import callbacks, store  # noqa: F401
from tests.web.test_reports import events  # noqa: F401


@pytest.fixture
def db_file(pg_url) -> str:
    return pg_url
