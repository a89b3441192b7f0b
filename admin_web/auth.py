"""Log in and out.  Login attempts are rate-limited per client address (app.py)."""
from __future__ import annotations

import logging

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired

from admin_web import accounts, db, metrics
from admin_web.security import can, start_session

logger = logging.getLogger(__name__)

bp = Blueprint("auth", __name__, url_prefix="/auth")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(db.get(), form.username.data, form.password.data)
        metrics.count_login("ok" if user is not None else "refused")
        if user is not None:
            start_session(user.id)
            logger.info("user %s (%s) logged in from %s", user.username, user.role, request.remote_addr)
            return redirect(_safe_next(request.args.get("next")) or home_for(user))
        flash("Wrong username or password.", "error")
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str | None:
    """Only local paths: never redirect a login to another site."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


def home_for(user) -> str:
    if can(user.role, "flows.view"):
        return url_for("flows.index")
    if can(user.role, "agent.page") and user.agent_extension:
        return url_for("agent.index")
    return url_for("auth.whoami")


@bp.get("/me")
def whoami():
    if g.get("user") is None:
        return redirect(url_for("auth.login"))
    return render_template("auth/me.html")
