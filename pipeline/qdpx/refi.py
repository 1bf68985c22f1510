"""The REFI-QDA vocabulary that reading and writing a project share.

The XML namespaces of a project (.qde inside a .qdpx) and of a codebook (.qdc), and the lines an export
writes into the descriptions of a codebook's impacts and categories so that an import finds their ids again."""

PROJECT_NS = "urn:QDA-XML:project:1.0"
CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
# Lines an export adds to code descriptions, so a re-import finds the codebook's ids behind the names.
IMPACT_MARK, CATEGORY_MARK = "imri-autocode id:", "imri-autocode category:"
