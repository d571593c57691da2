"""Raw records into store rows, in four parts: `batch` splits a batch into rows and rejects,
trying each entity's column-at-a-time path (`fast`) first and its reference rule (`rules`)
for what that leaves; `rows` declares what comes out; `days` holds the local dates both
paths read."""
