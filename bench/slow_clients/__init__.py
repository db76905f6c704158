"""Slow clients: the worst workspace poll while uploads trickle in and headers drip, and while
downloads are read slowly through nginx (the penetration test of issue 19).

gunicorn runs exactly as gunicorn.conf.py configures it. The slow clients live in a child
process (one asyncio loop), so their sends never compete with the poller for this process's
GIL; the poller opens a new connection for every poll, as a fresh client would.
"""
