"""Labels every stage agrees on.

`TOTAL` marks a margin row in a mart: the label a dimension takes where the row sums over all of its
categories. The builder writes it, the suppressor and the audit read it to find relations, publish uses
it to order rows, and exports translate it for readers.
"""

TOTAL = "Total"
