/*
 * store_fixture.h - the fixture the store's unit tests share: a fresh
 * temporary directory per test (removed after it) and a store opened there.
 */
#ifndef TESTS_STORE_FIXTURE_H
#define TESTS_STORE_FIXTURE_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "storage.h"
#include "store_data.h"
#include "util.h"

static char dir[64];

static void setup(void)
{
	temp_dir_make(dir, sizeof dir, "/tmp/nnd-store-XXXXXX");
}

static void teardown(void)
{
	temp_dir_remove(dir);
}

static store *open_store(void)
{
	store *s = NULL;
	char err[256];
	ck_assert_int_eq(store_open(dir, &s, err, sizeof err), 0);
	return s;
}

#endif
