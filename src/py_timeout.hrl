%% A call's timeout in ms as the API takes it: `infinity' or 0 up to the longest wait a
%% `receive ... after' takes (2^32-1 ms, about 49.7 days; a longer one makes the waiting
%% process exit with timeout_value after the request ran). For guards.
-define(IS_TIMEOUT(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0 andalso T =< 16#FFFFFFFF))).
