"""DefaultServices.customer asks the shared customer directory (a lookup node's data)."""
from __future__ import annotations

from callpilot.infra.db.base import Base
from callpilot.infra.db.customers import CustomerDirectory
from callpilot.infra.db.models import Customer
from callpilot.infra.db.session import make_engine, make_sessionmaker
from ivr.services import DefaultServices


async def test_customer_profile_from_the_directory(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    Base.metadata.create_all(engine)
    with make_sessionmaker(engine).begin() as s:
        s.add(Customer(phone="15550002", name="Kim", birth_year=1980, segment="gold", language="ko"))
    services = DefaultServices(CustomerDirectory(engine), age_band=lambda b, y: "x")
    profile = await services.customer("15550002")
    assert profile["name"] == "Kim" and profile["birth_year"] == 1980
    assert await services.customer("15559999") is None
    assert await services.customer("") is None
    assert await DefaultServices(None, age_band=lambda b, y: "x").customer("15550002") is None
    engine.dispose()
