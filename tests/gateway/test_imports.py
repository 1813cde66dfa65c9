"""What the entry points import first (gateway/process/imports.py): each in a fresh
interpreter, since this test process has imported the whole stack already."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_fresh(program: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sqlalchemy_asyncio_engine_runs_without_the_orm_until_asked_for_more():
    out = run_fresh(
        """
        import asyncio, sys
        from gateway.process.imports import import_sqlalchemy_asyncio_without_orm

        import_sqlalchemy_asyncio_without_orm()
        import_sqlalchemy_asyncio_without_orm()  # a second call changes nothing
        from sqlalchemy import text
        from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
        from sqlalchemy.ext.asyncio.engine import AsyncEngine as Defined

        assert AsyncEngine is Defined

        async def query():
            engine = create_async_engine("sqlite+aiosqlite:///:memory:")
            assert isinstance(engine, AsyncEngine)
            async with engine.connect() as connection:
                value = (await connection.execute(text("select 41 + 1"))).scalar()
            await engine.dispose()
            return value

        print(asyncio.run(query()), "sqlalchemy.orm" in sys.modules)
        from sqlalchemy.ext.asyncio import AsyncSession  # the rest of the package

        import sqlalchemy.ext.asyncio as package
        from sqlalchemy.ext.asyncio.session import AsyncSession as Session

        print(AsyncSession is Session, "sqlalchemy.orm" in sys.modules)
        try:
            package.no_such_name
        except AttributeError:
            print("AttributeError")
        """
    )
    assert out.split("\n")[:3] == ["42 False", "True True", "AttributeError"]


def test_sqlalchemy_asyncio_already_imported_is_left_alone():
    out = run_fresh(
        """
        import sys
        import sqlalchemy.ext.asyncio as before
        from gateway.process.imports import import_sqlalchemy_asyncio_without_orm

        import_sqlalchemy_asyncio_without_orm()
        print(sys.modules["sqlalchemy.ext.asyncio"] is before, "sqlalchemy.orm" in sys.modules)
        """
    )
    assert out.strip() == "True True"
