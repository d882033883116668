// Every visible node of a syntax tree in depth-first order, in one call.
//
// A TSTreeCursor visits the same nodes, but each step is a call through
// the library's API that rebuilds its child iterator and calls the step
// function through a pointer; over every node of a large repository that
// was a tenth of a scan. This walks the subtrees directly with the
// library's own inline accessors (its internal headers, from the same
// crate version that compiled the library) and yields exactly the nodes,
// positions and aliases the cursor would: hidden nodes are stepped
// through, a child is visible if its subtree is or the parent's
// production aliases it (extras are never aliased).

#include <stdlib.h>

#include "tree_sitter/api.h"
#include "./language.h"
#include "./length.h"
#include "./subtree.h"
#include "./tree.h"

typedef struct {
  TSNode node;
  // Visible nodes below this one: its subtree ends `descendants` entries
  // after it.
  uint32_t descendants;
  // ts_node_symbol of the node.
  uint16_t symbol;
  uint16_t reserved;
  // The row of ts_node_end_point (the start row is in the node).
  uint32_t end_row;
} GraftVisit;

typedef struct {
  const Subtree *children;
  uint32_t count;
  uint32_t index;
  uint32_t structural;
  Length position;
  const TSSymbol *aliases;
  // The entry of the visible node these children belong to, or UINT32_MAX
  // for a hidden node's children.
  uint32_t open;
} Frame;

typedef struct {
  GraftVisit *items;
  size_t len;
  size_t cap;
} Out;

static int out_push(Out *out, GraftVisit v) {
  if (out->len == out->cap) {
    size_t cap = out->cap ? out->cap * 2 : 1024;
    GraftVisit *items = realloc(out->items, cap * sizeof(GraftVisit));
    if (!items) return 0;
    out->items = items;
    out->cap = cap;
  }
  out->items[out->len++] = v;
  return 1;
}

// Fills `*items` (grown with realloc; the caller keeps it between calls and
// frees it with graft_preorder_free) with the visible nodes of `tree`.
// Returns the number of nodes, or -1 if memory ran out.
long graft_preorder(const TSTree *tree, GraftVisit **items, size_t *cap) {
  Out out = {*items, 0, *cap};
  const TSLanguage *language = tree->language;
  Frame *stack = NULL;
  size_t depth = 0, stack_cap = 0;
  long result = -1;

  Length root_position = ts_subtree_padding(tree->root);
  GraftVisit root = {
    ts_node_new(tree, &tree->root, root_position, 0),
    0,
    ts_language_public_symbol(language, ts_subtree_symbol(tree->root)),
    0,
    root_position.extent.row + ts_subtree_size(tree->root).extent.row,
  };
  if (!out_push(&out, root)) goto done;

#define PUSH_CHILDREN(subtree, pos, open_index)                                     \
  do {                                                                              \
    if (depth == stack_cap) {                                                       \
      size_t c = stack_cap ? stack_cap * 2 : 64;                                    \
      Frame *s = realloc(stack, c * sizeof(Frame));                                 \
      if (!s) goto done;                                                            \
      stack = s;                                                                    \
      stack_cap = c;                                                                \
    }                                                                               \
    stack[depth++] = (Frame){                                                       \
      ts_subtree_children(subtree),                                                 \
      ts_subtree_child_count(subtree),                                              \
      0,                                                                            \
      0,                                                                            \
      (pos),                                                                        \
      ts_language_alias_sequence(language, (subtree).ptr->production_id),           \
      (open_index),                                                                 \
    };                                                                              \
  } while (0)

  if (ts_subtree_child_count(tree->root) > 0) PUSH_CHILDREN(tree->root, root_position, 0);

  while (depth > 0) {
    Frame *f = &stack[depth - 1];
    if (f->index == f->count) {
      if (f->open != UINT32_MAX) {
        out.items[f->open].descendants = (uint32_t)(out.len - f->open - 1);
      }
      depth--;
      continue;
    }
    const Subtree *child = &f->children[f->index];
    Length position = f->position;
    TSSymbol alias = 0;
    if (!ts_subtree_extra(*child)) {
      if (f->aliases) alias = f->aliases[f->structural];
      f->structural++;
    }
    Length size = ts_subtree_size(*child);
    f->position = length_add(position, size);
    f->index++;
    if (f->index < f->count) {
      f->position = length_add(f->position, ts_subtree_padding(f->children[f->index]));
    }

    uint32_t open = UINT32_MAX;
    if (ts_subtree_visible(*child) || alias) {
      TSSymbol symbol = alias ? alias : ts_subtree_symbol(*child);
      GraftVisit v = {
        {{position.bytes, position.extent.row, position.extent.column, alias}, child, tree},
        0,
        symbol == ts_builtin_sym_error ? symbol : language->public_symbol_map[symbol],
        0,
        position.extent.row + size.extent.row,
      };
      open = (uint32_t)out.len;
      if (!out_push(&out, v)) goto done;
    }
    // `f` may move when the stack grows: it is not used below.
    if (ts_subtree_child_count(*child) > 0) PUSH_CHILDREN(*child, position, open);
  }
  result = (long)out.len;

#undef PUSH_CHILDREN
done:
  free(stack);
  *items = out.items;
  *cap = out.cap;
  return result;
}

void graft_preorder_free(GraftVisit *items) { free(items); }
